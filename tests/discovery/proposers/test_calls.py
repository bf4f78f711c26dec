"""Calls to a real OpenAI-compatible server on loopback: retries, timeouts, breaker, budget.

The production client talks HTTP through the `openai` SDK to tests/discovery/openai_server.py;
nothing is mocked. Waits are recorded (and really slept) so that tests can check what was asked.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from pydantic import SecretStr

from discovery.proposers.errors import BudgetExhausted, ProposerUnavailable
from discovery.proposers.llm.breaker import CircuitBreaker
from discovery.proposers.llm.calls import Caller, RetryPolicy
from discovery.proposers.llm.client import OpenAIClient
from discovery.proposers.llm.config import JsonMode
from discovery.proposers.llm.pricing import Price, PriceTable
from evaluator import LLMCall
from tests.openai_server import Reply, ScriptedServer

KEY = "sk-test-7f3a9c2e1b"
MESSAGES = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello"}]


class Harness:
    """A Caller wired to the scripted server, with its records and waits kept."""

    def __init__(
        self,
        server: ScriptedServer,
        *,
        max_retries: int = 2,
        breaker_calls: int = 2,
        timeout_s: float = 5.0,
        json_mode: JsonMode = "auto",
        base_url: str | None = None,
    ) -> None:
        self.records: list[LLMCall] = []
        self.waits: list[float] = []
        self.client = OpenAIClient(
            base_url=base_url or server.base_url,
            api_key=SecretStr(KEY),
            temperature=0.5,
            max_tokens=256,
        )
        self.caller = Caller(
            client=self.client,
            prices=PriceTable({"m": Price(prompt=1.0, completion=2.0)}),
            recorder=self.records.append,
            breaker=CircuitBreaker(endpoint=self.client.endpoint, threshold=breaker_calls),
            retry=RetryPolicy(max_retries=max_retries, backoff_s=0.01),
            max_tokens=256,
            timeout_s=timeout_s,
            json_mode=json_mode,
            rng=np.random.default_rng(0),
            sleep=self._sleep,
        )

    def _sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        time.sleep(seconds)

    def call(self, dollars_left: float | None = None):
        return self.caller.call(MESSAGES, model="m", purpose="propose", dollars_left=dollars_left)


def test_a_reply_comes_back_priced_and_recorded(openai_server: ScriptedServer) -> None:
    openai_server.push(Reply(content="hi there"))
    h = Harness(openai_server)
    completion = h.call()
    assert completion is not None and completion.text == "hi there"
    assert completion.usage_reported and completion.prompt_tokens > 0
    [record] = h.records
    assert record.error is None and record.purpose == "propose" and record.model == "m"
    expected = (record.prompt_tokens * 1.0 + record.completion_tokens * 2.0) / 1e6
    assert record.cost_usd == pytest.approx(expected) and record.cost_usd > 0
    assert h.caller.spent == pytest.approx(expected)
    # What was sent: the messages, the model, JSON mode, the token cap, the key as a bearer token.
    [body] = openai_server.requests
    assert body["messages"] == MESSAGES and body["model"] == "m"
    assert body["response_format"] == {"type": "json_object"} and body["max_tokens"] == 256
    assert openai_server.authorizations == [f"Bearer {KEY}"]


def test_a_429_is_retried_after_its_retry_after(openai_server: ScriptedServer) -> None:
    openai_server.push(
        Reply(status=429, headers={"Retry-After": "0.2"}, error="rate limited"), Reply(content="ok")
    )
    h = Harness(openai_server)
    completion = h.call()
    assert completion is not None and completion.text == "ok"
    assert h.waits and h.waits[0] >= 0.2  # the server's Retry-After, not the 0.01 s backoff
    assert [r.error is None for r in h.records] == [False, True]
    assert "HTTP 429" in (h.records[0].error or "") and h.records[0].cost_usd == 0


def test_a_500_is_retried_with_backoff(openai_server: ScriptedServer) -> None:
    openai_server.push(Reply(status=500, error="boom"), Reply(status=502), Reply(content="ok"))
    h = Harness(openai_server)
    assert h.call() is not None
    assert len(h.waits) == 2 and all(0 < w <= 0.04 for w in h.waits)
    assert [r.error is not None for r in h.records] == [True, True, False]
    assert "HTTP 500" in (h.records[0].error or "")


def test_a_reply_slower_than_the_timeout_is_abandoned_and_retried(
    openai_server: ScriptedServer,
) -> None:
    openai_server.push(Reply(content="late", delay_s=3.0), Reply(content="on time"))
    h = Harness(openai_server, timeout_s=0.5)
    completion = h.call()
    assert completion is not None and completion.text == "on time"
    assert "no reply within 0.5 s" in (h.records[0].error or "")


def test_a_body_that_is_not_json_is_retried(openai_server: ScriptedServer) -> None:
    openai_server.push(Reply(raw=b"<html>bad gateway</html>"), Reply(content="ok"))
    h = Harness(openai_server)
    assert h.call() is not None
    assert "not chat-completions JSON" in (h.records[0].error or "")


def test_an_endpoint_that_stays_down_opens_the_breaker(openai_server: ScriptedServer) -> None:
    openai_server.default = Reply(status=503, error="overloaded")
    h = Harness(openai_server, max_retries=1, breaker_calls=2)
    assert h.call() is None  # failed for good after 2 attempts; the breaker is still closed
    with pytest.raises(ProposerUnavailable) as error:
        h.call()
    message = str(error.value)
    assert openai_server.base_url in message and "4 attempts in 2 calls" in message
    assert "HTTP 503" in message
    sent = len(openai_server.requests)
    with pytest.raises(ProposerUnavailable):
        h.call()  # open: nothing more is sent
    assert len(openai_server.requests) == sent == 4
    assert len(h.records) == 4 and all(r.error for r in h.records)


def test_an_unreachable_endpoint_opens_the_breaker() -> None:
    closed = ScriptedServer().start()
    url = closed.base_url
    closed.close()  # nothing listens there any more
    h = Harness(closed, max_retries=0, breaker_calls=1, base_url=url)
    with pytest.raises(ProposerUnavailable, match="cannot connect"):
        h.call()
    assert len(h.records) == 1


def test_a_refused_key_pauses_at_once_and_the_key_is_never_repeated(
    openai_server: ScriptedServer,
) -> None:
    # A careless server echoes the key it was sent.
    openai_server.default = Reply(status=401, error=f"Incorrect API key provided: {KEY}")
    h = Harness(openai_server, breaker_calls=4)
    with pytest.raises(ProposerUnavailable) as error:
        h.call()
    assert len(openai_server.requests) == 1  # not retried: only the user can fix it
    assert "LOSSFORGE_LLM_API_KEY" in str(error.value)
    assert KEY not in str(error.value) and "***" in str(error.value)
    assert all(KEY not in (r.error or "") for r in h.records)


def test_json_mode_auto_stops_asking_when_the_endpoint_refuses(
    openai_server: ScriptedServer,
) -> None:
    def strict(body: dict) -> Reply:
        if "response_format" in body:
            return Reply(status=400, error="response_format is not supported by this server")
        return Reply(content="plain")

    openai_server.default = strict
    h = Harness(openai_server, max_retries=0)
    assert h.call() is not None and h.call() is not None
    assert ["response_format" in b for b in openai_server.requests] == [True, False, False]
    on = Harness(openai_server, max_retries=0, json_mode="on", breaker_calls=3)
    assert on.call() is None  # "on" means on: a refusal is an error


def test_max_completion_tokens_when_the_endpoint_asks_for_it(
    openai_server: ScriptedServer,
) -> None:
    def reasoning(body: dict) -> Reply:
        if "max_tokens" in body:
            message = "Unsupported parameter: 'max_tokens'. Use 'max_completion_tokens' instead."
            return Reply(status=400, error=message)
        return Reply(content="ok")

    openai_server.default = reasoning
    h = Harness(openai_server, max_retries=0)
    assert h.call() is not None
    assert openai_server.requests[-1]["max_completion_tokens"] == 256


def test_a_reply_without_usage_is_counted_from_its_length(openai_server: ScriptedServer) -> None:
    openai_server.push(Reply(content="x" * 300, usage=False))
    h = Harness(openai_server)
    completion = h.call()
    assert completion is not None and not completion.usage_reported
    assert completion.completion_tokens == 100 and completion.prompt_tokens > 0
    assert h.records[0].cost_usd > 0  # dollars are estimated, not undercounted


def test_a_call_that_could_overspend_is_never_sent(openai_server: ScriptedServer) -> None:
    h = Harness(openai_server)
    worst = h.caller.worst_case_cost(MESSAGES, "m")
    assert worst > 0
    with pytest.raises(BudgetExhausted, match="could cost up to"):
        h.call(dollars_left=worst * 0.99)
    assert openai_server.requests == [] and h.records == []
    openai_server.push(Reply(content="ok"))
    assert h.call(dollars_left=worst) is not None


def test_backoff_doubles_is_jittered_and_capped() -> None:
    policy = RetryPolicy(max_retries=5, backoff_s=1.0, max_backoff_s=6.0)
    rng = np.random.default_rng(1)
    delays = [policy.delay(k, None, rng) for k in (1, 2, 3, 4)]
    assert 0.5 <= delays[0] <= 1.0 and 1.0 <= delays[1] <= 2.0 and 2.0 <= delays[2] <= 4.0
    assert delays[3] <= 6.0
    assert policy.delay(1, 5.0, rng) == 5.0 and policy.delay(1, 100.0, rng) == 6.0
    again = np.random.default_rng(1)
    assert [policy.delay(k, None, again) for k in (1, 2, 3, 4)] == delays  # seeded
