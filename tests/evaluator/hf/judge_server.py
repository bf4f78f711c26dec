"""A scripted LLM judge behind the loopback OpenAI-compatible server (tests/openai_server.py).

Every request is answered with a verdict chosen by a script function of what the judge was shown
(default: always "A", a judge with pure position bias), with fixed token usage, and recorded: the
prompt and the answers shown as A and B, and the body. The first requests can fail with HTTP 500.
The server runs in a thread of the test process; Ray workers reach it through 127.0.0.1.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tests.openai_server import Reply, ScriptedServer

_RESPONSE = re.compile(r"\[Response A\]\n(.*)\n\n\[Response B\]\n(.*)\n\nWhich", re.S)
_PROMPT = re.compile(r"\[Prompt\]\n(.*)\n\n\[Response A\]", re.S)


@dataclass
class Seen:
    """One request as the judge saw it."""

    prompt: str
    first: str  # the answer shown as A
    second: str  # the answer shown as B
    body: dict[str, Any]


class ScriptedJudge:
    def __init__(
        self,
        verdict: Callable[[Seen], str] = lambda seen: "A",
        *,
        prompt_tokens: int = 120,
        completion_tokens: int = 1,
        fail_first: int = 0,  # answer this many requests with HTTP 500 first
    ) -> None:
        self.verdict = verdict
        self.prompt_tokens = prompt_tokens
        self.completion_tokens = completion_tokens
        self.fail_first = fail_first
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        self._server = ScriptedServer(default=self._answer)

    @property
    def base_url(self) -> str:
        return self._server.base_url

    @property
    def authorizations(self) -> list[str]:
        """The Authorization header of every request."""
        return self._server.authorizations

    def start(self) -> ScriptedJudge:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.close()

    def _answer(self, body: dict[str, Any]) -> Reply:
        user = body["messages"][-1]["content"]
        answers, prompt = _RESPONSE.search(user), _PROMPT.search(user)
        seen = Seen(
            prompt=prompt.group(1) if prompt else "",
            first=answers.group(1) if answers else "",
            second=answers.group(2) if answers else "",
            body=body,
        )
        with self._lock:
            self.seen.append(seen)
            failing = self.fail_first > 0
            self.fail_first -= 1 if failing else 0
        if failing:
            return Reply(status=500)
        return Reply(
            content=self.verdict(seen),
            prompt_tokens=self.prompt_tokens,
            completion_tokens=self.completion_tokens,
        )
