"""The LLM judge: both orders per prompt, win rate with a bootstrap interval, every call recorded
(tokens, cost, errors without the key), against a scripted OpenAI-compatible server on loopback."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from evaluator.hf.config import JudgeSettings
from evaluator.hf.errors import JudgeError
from evaluator.hf.judge import Verdict, judge_win_rate, make_openai_judge
from evaluator.hf.stage import run_hf
from evaluator.results import LLMCall, RunStatus
from evaluator.stage_configs import parse_stage_config
from tests.evaluator.hf.judge_server import ScriptedJudge, Seen
from tests.evaluator.plain_losses import DPO

KEY = "sk-test-7f3a91"
PROMPTS = [f"prompt {i}" for i in range(6)]
MINE = [f"mine {i}" for i in range(6)]
THEIRS = [f"theirs {i}" for i in range(6)]


def _settings(server: ScriptedJudge, **extra: Any) -> JudgeSettings:
    return JudgeSettings(
        base_url=server.base_url,
        model="judge-1",
        prompt_price=2.0,
        completion_price=10.0,
        max_retries=0,
        **extra,
    )


def _prefers(word: str) -> Callable[[Seen], str]:
    return lambda seen: "A" if word in seen.first else "B"


def test_both_orders_are_asked_and_position_bias_cancels(judge_server: ScriptedJudge) -> None:
    calls: list[LLMCall] = []
    judge = make_openai_judge(_settings(judge_server), KEY)
    metrics = judge_win_rate(judge, PROMPTS, MINE, THEIRS, seed=0, max_concurrency=3, calls=calls)
    # The scripted judge always says "A": a pure position bias, which both orders cancel exactly.
    assert metrics["judge/win_rate"] == 0.5
    assert metrics["judge/ci_low"] == metrics["judge/ci_high"] == 0.5
    assert metrics["judge/first_position_rate"] == 1.0
    assert metrics["judge/comparisons"] == 6 and metrics["judge/failed_calls"] == 0
    shown = {(s.prompt, s.first, s.second) for s in judge_server.seen}
    for prompt, mine, theirs in zip(PROMPTS, MINE, THEIRS, strict=True):
        assert {(prompt, mine, theirs), (prompt, theirs, mine)} <= shown
    assert len(judge_server.seen) == 12
    assert set(judge_server.authorizations) == {f"Bearer {KEY}"}
    assert {s.body["model"] for s in judge_server.seen} == {"judge-1"}
    assert len(calls) == 12
    for call in calls:
        assert call.purpose == "judge" and call.model == "judge-1"
        assert call.prompt_tokens == 120 and call.completion_tokens == 1
        assert call.cost_usd == pytest.approx((120 * 2.0 + 1 * 10.0) / 1e6)
        assert call.latency_s > 0 and call.error is None


def test_a_judge_that_prefers_the_policy_gives_win_rate_one(judge_server: ScriptedJudge) -> None:
    judge_server.verdict = _prefers("mine")
    metrics = judge_win_rate(
        make_openai_judge(_settings(judge_server), KEY),
        PROMPTS,
        MINE,
        THEIRS,
        seed=0,
        max_concurrency=2,
        calls=[],
    )
    assert metrics["judge/win_rate"] == 1.0
    assert metrics["judge/first_position_rate"] == 0.5


class _Mixed:
    """In process: the policy wins prompts 0-2 in both orders and loses the others."""

    def compare(self, prompt: str, first: str, second: str) -> Verdict:
        index = int(prompt.rsplit(maxsplit=1)[-1])
        mine_first = first.startswith("mine")
        wins = index < 3
        return Verdict(
            winner="A" if wins == mine_first else "B", call=LLMCall("judge", "j", 0, 0, 0.0, 0.0)
        )


def test_the_interval_is_a_bootstrap_over_prompts() -> None:
    metrics = judge_win_rate(_Mixed(), PROMPTS, MINE, THEIRS, seed=1, max_concurrency=1, calls=[])
    assert metrics["judge/win_rate"] == 0.5
    assert 0.0 <= metrics["judge/ci_low"] < 0.5 < metrics["judge/ci_high"] <= 1.0
    again = judge_win_rate(_Mixed(), PROMPTS, MINE, THEIRS, seed=1, max_concurrency=1, calls=[])
    assert again == metrics  # seeded


def test_failed_calls_are_recorded_without_the_key_and_the_rest_still_count(
    judge_server: ScriptedJudge,
) -> None:
    judge_server.fail_first = 3
    calls: list[LLMCall] = []
    metrics = judge_win_rate(
        make_openai_judge(_settings(judge_server, max_concurrency=1), KEY),
        PROMPTS,
        MINE,
        THEIRS,
        seed=0,
        max_concurrency=1,
        calls=calls,
    )
    assert metrics["judge/failed_calls"] == 3
    assert metrics["judge/comparisons"] == 5  # prompt 0 lost both orders, prompt 1 one
    errors = [c.error for c in calls if c.error]
    assert len(errors) == 3 and all("InternalServerError" in e for e in errors)
    assert all(KEY not in str(c) for c in calls)


def test_a_judge_that_never_answers_is_an_error_and_its_calls_are_kept(
    judge_server: ScriptedJudge,
) -> None:
    judge_server.verdict = lambda seen: "I cannot decide."
    calls: list[LLMCall] = []
    with pytest.raises(JudgeError, match="no usable verdict in 12 requests"):
        judge_win_rate(
            make_openai_judge(_settings(judge_server), KEY),
            PROMPTS,
            MINE,
            THEIRS,
            seed=0,
            max_concurrency=4,
            calls=calls,
        )
    assert len(calls) == 12
    assert all("no verdict" in c.error for c in calls)


def test_run_hf_scores_against_the_reference_with_the_judge(
    hf_config: Callable[..., dict[str, Any]], judge_server: ScriptedJudge
) -> None:
    config = parse_stage_config(
        "hf",
        hf_config(
            judge={"base_url": judge_server.base_url, "model": "judge-1", "prompt_price": 1.0}
        ),
    )
    assert config.metric == "judge/win_rate"
    result = run_hf(DPO, task="beta=0.1", seed=0, config=config, api_key=KEY)
    assert result.status is RunStatus.DONE, result.reason
    assert result.metrics["judge/win_rate"] == 0.5
    assert result.metrics["judge/comparisons"] == 8  # num_eval_prompts
    assert len(result.llm_calls) == 16 == len(judge_server.seen)
    assert sum(c.cost_usd for c in result.llm_calls) == pytest.approx(16 * 120 / 1e6)
    # The two answers of each request are the policy's and the reference's, in both orders.
    pairs = [(s.prompt, s.first, s.second) for s in judge_server.seen]
    assert {(p, b, a) for p, a, b in pairs} == set(pairs)
