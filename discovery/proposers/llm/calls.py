"""One logical call to a model: budget check, retries with backoff, the breaker, and the record.

`Caller.call(messages, model=..., purpose="propose", dollars_left=...)` returns a `Completion`, or
None when the call failed after its last retry while the endpoint is still given a chance. Before
sending it refuses a call whose worst-case cost (the prompt's conservative token estimate plus
`max_tokens`, at the model's price) exceeds the dollars left (`BudgetExhausted`), so a budget is
never overspent by a call the proposer chose to make. Retryable failures (429, 5xx, timeouts,
drops) are retried up to `max_retries` times after an exponential backoff with jitter drawn from
the injected rng; a server's Retry-After is a floor on the wait. Every request, failed or not, is
handed to the recorder (model, tokens, cost, latency, error, and its transcript: the messages
sent, the reply's text and the messages' `prompt_hash`) the moment it ends, so the archive's
`llm_calls` table, which the dollar budget is read from, sees every one. When the breaker opens
the call raises `ProposerUnavailable`.

It does not build prompts or read replies (prompts.py, replies.py) and holds no secrets.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from discovery.proposers.errors import BudgetExhausted, LLMCallError
from discovery.proposers.llm.breaker import CircuitBreaker
from discovery.proposers.llm.client import Completion, LLMClient, Message, estimate_tokens
from discovery.proposers.llm.config import JsonMode
from discovery.proposers.llm.pricing import PriceTable
from evaluator import LLMCall

__all__ = ["Caller", "Purpose", "Recorder", "RetryPolicy", "prompt_hash"]

log = logging.getLogger(__name__)

Purpose = Literal["propose", "repair"]
_MAX_ADAPTATIONS = 2  # request changes (JSON mode off, max_completion_tokens) within one call


def prompt_hash(messages: Sequence[Message]) -> str:
    """The hash that ties a candidate (its provenance's `prompt_hash`) to the request that wrote
    it (the `llm_calls` row's): sha256 of the messages' JSON as sent, first 16 hex digits."""
    return hashlib.sha256(json.dumps(list(messages)).encode()).hexdigest()[:16]


# Each request, failed or not, as the archive stores it: the one LLM-call record of the project
# (the hf judge's calls are the same record).
Recorder = Callable[[LLMCall], None]


@dataclass(frozen=True)
class RetryPolicy:
    """How a failed request is retried."""

    max_retries: int = 3  # retries after the first request (0: none)
    backoff_s: float = 1.0  # wait before the first retry; doubled for each further one
    max_backoff_s: float = 60.0  # longest wait, Retry-After included

    def delay(self, retry: int, retry_after_s: float | None, rng: np.random.Generator) -> float:
        """Wait before retry number `retry` (1-based): backoff, jittered to 50-100%, never below
        the server's Retry-After, never above `max_backoff_s`."""
        backoff = min(self.max_backoff_s, self.backoff_s * 2 ** (retry - 1))
        wait = backoff * (0.5 + 0.5 * float(rng.random()))
        if retry_after_s is not None:
            wait = max(wait, retry_after_s)
        return min(wait, self.max_backoff_s)


class Caller:
    """Calls one client for a proposer; see the module docstring."""

    def __init__(
        self,
        *,
        client: LLMClient,
        prices: PriceTable,
        recorder: Recorder,
        breaker: CircuitBreaker,
        retry: RetryPolicy,
        max_tokens: int,
        timeout_s: float,
        json_mode: JsonMode,
        rng: np.random.Generator,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.prices = prices
        self.recorder = recorder
        self.breaker = breaker
        self.retry = retry
        self.max_tokens = max_tokens
        self.timeout_s = timeout_s
        self.json_mode = json_mode
        self.rng = rng
        self.sleep = sleep
        self.clock = clock
        self.spent = 0.0  # dollars recorded by this caller

    def worst_case_cost(self, messages: Sequence[Message], model: str) -> float:
        """The most one request can cost: the estimated prompt plus a full `max_tokens` reply."""
        prompt = estimate_tokens(json.dumps(list(messages)))
        return self.prices.cost(model, prompt, self.max_tokens)

    def call(
        self,
        messages: Sequence[Message],
        *,
        model: str,
        purpose: Purpose,
        dollars_left: float | None,
    ) -> Completion | None:
        self.breaker.check()
        if dollars_left is not None:
            worst = self.worst_case_cost(messages, model)
            if worst > dollars_left:
                raise BudgetExhausted(
                    f"a {purpose} call to {model} could cost up to ${worst:.4f} and "
                    f"${dollars_left:.4f} is left"
                )
        attempts = retries = adaptations = 0
        while True:
            attempts += 1
            started = self.clock()
            try:
                completion = self.client.complete(
                    messages, model=model, json_mode=self.json_mode, timeout_s=self.timeout_s
                )
            except LLMCallError as exc:
                self._record(
                    purpose, model, messages, latency_s=self.clock() - started, error=str(exc)
                )
                if exc.adapted and adaptations < _MAX_ADAPTATIONS:
                    adaptations += 1
                    log.info("%s: %s", self.client.endpoint, exc)
                    continue
                if exc.retryable and retries < self.retry.max_retries:
                    retries += 1
                    wait = self.retry.delay(retries, exc.retry_after_s, self.rng)
                    log.warning(
                        "%s call to %s failed (%s); retry in %.2f s", purpose, model, exc, wait
                    )
                    self.sleep(wait)
                    continue
                log.warning("%s call to %s failed for good: %s", purpose, model, exc)
                self.breaker.failure(str(exc), attempts=attempts, fatal=exc.config)
                self.breaker.check()
                return None
            cost = self.prices.cost(model, completion.prompt_tokens, completion.completion_tokens)
            self._record(
                purpose,
                model,
                messages,
                reply=completion.text,
                prompt_tokens=completion.prompt_tokens,
                completion_tokens=completion.completion_tokens,
                cost_usd=cost,
                latency_s=completion.latency_s,
            )
            self.breaker.success()
            return completion

    def _record(
        self,
        purpose: Purpose,
        model: str,
        messages: Sequence[Message],
        *,
        reply: str | None = None,
        prompt_tokens: int = 0,
        completion_tokens: int = 0,
        cost_usd: float = 0.0,
        latency_s: float,
        error: str | None = None,
    ) -> None:
        self.spent += cost_usd
        sent = tuple({"role": m["role"], "content": m["content"]} for m in messages)
        self.recorder(
            LLMCall(
                purpose,
                model,
                prompt_tokens,
                completion_tokens,
                cost_usd,
                latency_s,
                error,
                messages=sent,
                reply=reply,
                prompt_hash=prompt_hash(messages),
            )
        )
