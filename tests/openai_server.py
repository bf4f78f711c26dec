"""A scripted OpenAI-compatible chat-completions server on loopback, for tests (the LLM
proposers' endpoint, and under tests/evaluator/hf/judge_server.py the hf stage's judge).

    server = ScriptedServer([Reply(content='{"candidates": [...]}'), Reply(status=429), ...])
    server.start()   # http://127.0.0.1:<port>/v1
    ...
    server.requests  # every request body received, in order (what the model was shown)

It speaks the real protocol over real HTTP (`POST /v1/chat/completions`, the response JSON with
`choices` and `usage`, error bodies with `{"error": {...}}`), so the code under test goes through
the `openai` client unchanged. Each request takes the next step of the script: a `Reply`, or a
function of the request body returning one; when the script is empty, `default` answers. A step
may fail (any status, a Retry-After header), answer slower than the client waits, omit usage, or
send a body that is not JSON at all.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Reply:
    content: str = ""  # the assistant message
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0  # wait before answering (longer than the client's timeout: a timeout)
    usage: bool = True  # report usage (tokens: a quarter of the characters, like a tokenizer)
    prompt_tokens: int | None = None  # report exactly these instead of the estimate
    completion_tokens: int | None = None
    raw: bytes | None = None  # send exactly these bytes as the body instead
    error: str = "scripted failure"  # message of an error body (status >= 400)


Step = Reply | Callable[[dict[str, Any]], Reply]  # a fixed reply, or one made from the request


def candidates(*items: tuple[str, str], thought: str = "scripted idea") -> str:
    """The JSON reply text for (name, code) candidates."""
    return json.dumps(
        {"candidates": [{"thought": thought, "name": n, "code": c} for n, c in items]}
    )


class ScriptedServer:
    def __init__(
        self,
        script: list[Step] | None = None,
        *,
        default: Step | None = None,
    ) -> None:
        self.script: list[Step] = list(script or [])
        self.default = default if default is not None else Reply(content='{"candidates": []}')
        self.requests: list[dict[str, Any]] = []
        self.authorizations: list[str] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def base_url(self) -> str:
        assert self._server is not None, "start() the server first"
        return f"http://127.0.0.1:{self._server.server_port}/v1"

    def push(self, *steps: Step) -> None:
        with self._lock:
            self.script.extend(steps)

    def start(self) -> ScriptedServer:
        handler = _handler(self)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def _next(self, body: dict[str, Any]) -> Reply:
        with self._lock:
            self.requests.append(body)
            step = self.script.pop(0) if self.script else self.default
        return step(body) if callable(step) else step


def _response(reply: Reply, body: dict[str, Any]) -> bytes:
    if reply.raw is not None:
        return reply.raw
    if reply.status >= 400:
        return json.dumps(
            {"error": {"message": reply.error, "type": "scripted", "code": reply.status}}
        ).encode()
    prompt_chars = sum(len(m.get("content") or "") for m in body.get("messages", []))
    data: dict[str, Any] = {
        "id": f"chatcmpl-{time.monotonic_ns()}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", "unknown"),
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": reply.content},
                "finish_reason": "stop",
            }
        ],
    }
    if reply.usage:
        prompt = reply.prompt_tokens if reply.prompt_tokens is not None else prompt_chars // 4 + 1
        completion = (
            reply.completion_tokens
            if reply.completion_tokens is not None
            else len(reply.content) // 4 + 1
        )
        data["usage"] = {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }
    return json.dumps(data).encode()


def _handler(server: ScriptedServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            raw = self.rfile.read(length)
            if self.path.rstrip("/") != "/v1/chat/completions":
                self._send(404, b'{"error": {"message": "not found"}}', {})
                return
            body = json.loads(raw)
            with server._lock:
                server.authorizations.append(self.headers.get("Authorization", ""))
            reply = server._next(body)
            if reply.delay_s:
                time.sleep(reply.delay_s)
            self._send(reply.status, _response(reply, body), reply.headers)

        def _send(self, status: int, payload: bytes, headers: dict[str, str]) -> None:
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up waiting (a timeout test)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler
