"""Pairwise LLM judging of the policy against the reference policy, in both orders.

For each held-out prompt the judge sees the policy's answer and the reference policy's answer
twice, once in each position, and names the better one (`A` or `B`). A prompt scores 1 when the
policy wins both orders, 0.5 when the orders disagree (position bias cancels out), 0 when it loses
both; a prompt with only one usable verdict scores that one. `judge/win_rate` is the mean over
prompts, with a 95% percentile-bootstrap interval over prompts (`judge/ci_low`, `judge/ci_high`;
the two orders of a prompt are not independent, so prompts are resampled, not verdicts).
Also reported: `judge/comparisons` (prompts with a verdict), `judge/failed_calls`, and
`judge/first_position_rate` (how often the first answer won: 0.5 means no position bias).

Every request is recorded as a plain dict (purpose "judge", model, tokens, cost, latency, error)
for the archive, failed ones too, so judge calls count toward a campaign's LLM budget. Errors are
recorded without the API key. If no prompt got a usable verdict, JudgeError.

`Judge` is the one-method boundary; `OpenAIJudge` speaks the chat-completions protocol of any
OpenAI-compatible endpoint through the `openai` client. This module does not generate answers.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from evaluator.hf.config import JudgeSettings
from evaluator.hf.errors import JudgeError
from evaluator.results import LLMCall

SYSTEM_PROMPT = (
    "You are an impartial judge. You are shown a prompt and two responses to it, A and B. Decide "
    "which response is better: more helpful, more accurate, and more relevant to the prompt. "
    "Length alone is not quality, and the order of the responses says nothing about them. Reply "
    "with exactly one letter: A or B."
)
_VERDICT = re.compile(r"\b([AB])\b")
_BOOTSTRAP = 2000  # resamples of prompts for the interval


@dataclass(frozen=True)
class Verdict:
    """One judge request: which answer won ("A", "B", or None if unusable) and its record."""

    winner: str | None
    call: LLMCall  # the request, as the archive's llm_calls table stores it


class Judge(Protocol):
    def compare(self, prompt: str, first: str, second: str) -> Verdict:
        """Which of two answers to `prompt` is better; never raises for a failed request."""
        ...


class OpenAIJudge:
    """A judge behind an OpenAI-compatible chat-completions endpoint."""

    def __init__(self, settings: JudgeSettings, client: Any, *, api_key: str | None) -> None:
        self.settings = settings
        self.client = client  # an openai.OpenAI (or anything with chat.completions.create)
        self._api_key = api_key  # only to scrub it from error messages

    def compare(self, prompt: str, first: str, second: str) -> Verdict:
        started = time.perf_counter()
        prompt_tokens = completion_tokens = 0
        error: str | None = None
        winner = None
        try:
            reply = self.client.chat.completions.create(
                model=self.settings.model,
                messages=[
                    {"role": "system", "content": SYSTEM_PROMPT},
                    {
                        "role": "user",
                        "content": f"[Prompt]\n{prompt}\n\n[Response A]\n{first}\n\n"
                        f"[Response B]\n{second}\n\nWhich response is better? Answer A or B.",
                    },
                ],
                max_tokens=self.settings.max_tokens,
                temperature=0.0,
            )
            usage = reply.usage
            if usage is not None:
                prompt_tokens = int(usage.prompt_tokens or 0)
                completion_tokens = int(usage.completion_tokens or 0)
            text = (reply.choices[0].message.content or "").strip() if reply.choices else ""
            match = _VERDICT.search(text.upper())
            if match:
                winner = match.group(1)
            else:
                error = f"no verdict (A or B) in the reply {text[:80]!r}"
        except Exception as exc:  # request boundary: a failed call is recorded, not raised
            error = self._scrub(f"{type(exc).__name__}: {exc}")[:300]
        call = LLMCall(
            purpose="judge",
            model=self.settings.model,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            cost_usd=(
                prompt_tokens * self.settings.prompt_price
                + completion_tokens * self.settings.completion_price
            )
            / 1e6,
            latency_s=time.perf_counter() - started,
            error=error,
        )
        return Verdict(winner=winner, call=call)

    def _scrub(self, text: str) -> str:
        return text.replace(self._api_key, "***") if self._api_key else text


def make_openai_judge(settings: JudgeSettings, api_key: str | None) -> OpenAIJudge:
    """An OpenAIJudge with its own client (the `openai` package is needed only here)."""
    import openai  # noqa: PLC0415 - judge-only dependency; GPU images without it can still train

    client = openai.OpenAI(
        base_url=settings.base_url,
        # Local OpenAI-compatible servers (vLLM, llama.cpp) accept any key; the client needs one.
        api_key=api_key or "no-key",
        timeout=settings.timeout_s,
        max_retries=settings.max_retries,
    )
    return OpenAIJudge(settings, client, api_key=api_key)


def judge_win_rate(
    judge: Judge,
    prompts: Sequence[str],
    policy_answers: Sequence[str],
    reference_answers: Sequence[str],
    *,
    seed: int,
    max_concurrency: int,
    calls: list[LLMCall],
) -> dict[str, float]:
    """Win rate of the policy over the reference, both orders per prompt.

    Every request's record is appended to `calls` (so a caller keeps them even if this raises).
    """
    n = len(prompts)
    requests = []  # (prompt, answer A, answer B); request 2i puts the policy first, 2i + 1 second
    for prompt, mine, theirs in zip(prompts, policy_answers, reference_answers, strict=True):
        requests += [(prompt, mine, theirs), (prompt, theirs, mine)]
    with ThreadPoolExecutor(max_workers=max_concurrency) as pool:
        verdicts = list(pool.map(lambda r: judge.compare(*r), requests))
    calls.extend(v.call for v in verdicts)
    scores = []  # per prompt with at least one verdict: the policy's share of wins
    firsts = []  # per usable verdict: did the first answer win
    for i in range(n):
        wins = []
        for j, verdict in enumerate(verdicts[2 * i : 2 * i + 2]):
            if verdict.winner is None:
                continue
            firsts.append(verdict.winner == "A")
            wins.append(verdict.winner == ("A" if j == 0 else "B"))
        if wins:
            scores.append(sum(wins) / len(wins))
    failed = sum(v.winner is None for v in verdicts)
    if not scores:
        first_error = next((v.call.error for v in verdicts if v.call.error), None)
        raise JudgeError(
            f"the judge gave no usable verdict in {len(verdicts)} requests; first error: "
            f"{first_error}"
        )
    values = np.asarray(scores)  # (n_usable,)
    rng = np.random.default_rng(seed)
    resampled = values[rng.integers(0, len(values), size=(_BOOTSTRAP, len(values)))].mean(axis=1)
    low, high = np.quantile(resampled, [0.025, 0.975])
    return {
        "judge/win_rate": float(values.mean()),
        "judge/ci_low": float(low),
        "judge/ci_high": float(high),
        "judge/comparisons": float(len(values)),
        "judge/failed_calls": float(failed),
        "judge/first_position_rate": float(np.mean(firsts)),
    }
