"""A scripted OpenAI-compatible chat-completions server on loopback, for the judge tests.

It answers POST /v1/chat/completions with a verdict chosen by a script function of the request
(default: always "A", a judge with pure position bias), reports token usage, and records every
request (its body, its Authorization header, and the answers it showed as A and B). It can also
fail the first requests with an HTTP error. It runs in a thread of the test process; Ray workers
reach it through 127.0.0.1.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_RESPONSE = re.compile(r"\[Response A\]\n(.*)\n\n\[Response B\]\n(.*)\n\nWhich", re.S)
_PROMPT = re.compile(r"\[Prompt\]\n(.*)\n\n\[Response A\]", re.S)


@dataclass
class Seen:
    """One request as the server saw it."""

    prompt: str
    first: str  # the answer shown as A
    second: str  # the answer shown as B
    authorization: str | None
    body: dict[str, Any]


@dataclass
class ScriptedJudge:
    verdict: Callable[[Seen], str] = lambda seen: "A"
    prompt_tokens: int = 120
    completion_tokens: int = 1
    fail_first: int = 0  # answer this many requests with HTTP 500 first
    seen: list[Seen] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None

    @property
    def base_url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def start(self) -> ScriptedJudge:
        judge = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length))
                user = body["messages"][-1]["content"]
                answers = _RESPONSE.search(user)
                prompt = _PROMPT.search(user)
                seen = Seen(
                    prompt=prompt.group(1) if prompt else "",
                    first=answers.group(1) if answers else "",
                    second=answers.group(2) if answers else "",
                    authorization=self.headers.get("Authorization"),
                    body=body,
                )
                with judge._lock:
                    judge.seen.append(seen)
                    failing = judge.fail_first > 0
                    judge.fail_first -= 1 if failing else 0
                if failing:
                    self._send(500, {"error": {"message": "scripted failure", "type": "server"}})
                    return
                self._send(
                    200,
                    {
                        "id": "chatcmpl-scripted",
                        "object": "chat.completion",
                        "created": 0,
                        "model": body["model"],
                        "choices": [
                            {
                                "index": 0,
                                "message": {"role": "assistant", "content": judge.verdict(seen)},
                                "finish_reason": "stop",
                            }
                        ],
                        "usage": {
                            "prompt_tokens": judge.prompt_tokens,
                            "completion_tokens": judge.completion_tokens,
                            "total_tokens": judge.prompt_tokens + judge.completion_tokens,
                        },
                    },
                )

            def _send(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:  # keep test output quiet
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
