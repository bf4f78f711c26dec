"""Campaigns with an hf stage, in process against real Ray, a real sandbox and a real SQLite
archive: a model that is not there fails each evaluation with the reason and the campaign goes
on; judge calls land in the archive and count toward the LLM-dollar budget."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from discovery.archive import Archive, CampaignStatus, CandidateStatus, EvaluationStatus
from discovery.retries import MAX_ATTEMPTS
from discovery.runner import (
    RunnerConfig,
    dispatch_timeout,
    job_context,
)
from discovery.service.leaderboard import campaign_leaderboard
from discovery.spec import parse_spec
from evaluator.secrets import Secret
from tests.discovery.conftest import RunEngine
from tests.discovery.test_engine import MARGIN_HINGE, ScriptedProposer
from tests.evaluator.hf.judge_server import ScriptedJudge
from tests.evaluator.hf.local import preference_rows, save_causal_lm, write_jsonl


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("hf-campaign")
    save_causal_lm(root / "policy", seed=0)
    write_jsonl(root / "prefs.jsonl", preference_rows(64, seed=0))
    return {"model": str(root / "policy"), "dataset": str(root / "prefs.jsonl")}


@pytest.fixture
def judge_server() -> Iterator[ScriptedJudge]:
    server = ScriptedJudge().start()
    yield server
    server.stop()


def _hf_spec(config: dict[str, Any]) -> Any:
    return parse_spec(
        {
            "name": "hf",
            "seed": 1,
            "stages": [{"name": "hf", "seeds": 1, "config": config}],
            "budget": {"candidates": 1},
            "baselines": ["dpo"],
            "max_in_flight": 2,
        }
    )


def _small(tiny: dict[str, str], **extra: Any) -> dict[str, Any]:
    return {
        **tiny,
        "num_train_pairs": 32,
        "num_eval_pairs": 8,
        "num_eval_prompts": 4,
        "max_new_tokens": 4,
        "max_length": 32,
        "per_device_train_batch_size": 8,
        "max_steps": 2,
        **extra,
    }


def test_a_missing_model_fails_each_evaluation_with_the_reason_and_the_campaign_ends(
    run_engine: RunEngine, store: Archive, tiny: dict[str, str], tmp_path: Path
) -> None:
    missing = str(tmp_path / "no-such-model")
    spec = _hf_spec(_small(tiny, model=missing))
    proposer = ScriptedProposer([[("margin_hinge", MARGIN_HINGE)]])
    campaign_id, status = run_engine(spec, proposer=proposer)
    assert status is CampaignStatus.FINISHED
    evaluations = store.list_evaluations(campaign_id=campaign_id)
    # One task, one seed: the candidate's run, and DPO's with its retries (every score needs it)
    dpo = next(c.id for c in store.list_candidates(campaign_id=campaign_id) if c.name == "dpo")
    attempts = sorted(e.attempt for e in evaluations if e.candidate_id == dpo)
    assert attempts == list(range(MAX_ATTEMPTS))
    assert len(evaluations) == MAX_ATTEMPTS + 1
    for e in evaluations:
        assert e.status is EvaluationStatus.ERROR
        assert f"policy '{missing}': no directory at {missing}" in (e.reason or "")
    for c in store.list_candidates(campaign_id=campaign_id):
        assert c.status is CandidateStatus.FAILED
        assert (c.reason or "").startswith(f"hf: policy '{missing}'")
    assert store.get_campaign(campaign_id).reason == "candidate budget reached"


def test_judge_calls_are_stored_and_spend_the_llm_budget(
    run_engine: RunEngine, store: Archive, tiny: dict[str, str], judge_server: ScriptedJudge
) -> None:
    judge = {"base_url": judge_server.base_url, "model": "judge-1", "prompt_price": 3.0}
    # Held out, as DiscoPOP held IMDb out: scored and shown, never used to select.
    spec = _hf_spec(_small(tiny, judge=judge, held_out=True))
    proposer = ScriptedProposer([[("margin_hinge", MARGIN_HINGE)]])
    campaign_id, status = run_engine(spec, proposer=proposer)
    assert status is CampaignStatus.FINISHED
    evaluations = store.list_evaluations(campaign_id=campaign_id)
    assert [e.status for e in evaluations] == [EvaluationStatus.DONE] * 2
    for e in evaluations:
        assert e.metrics["judge/win_rate"] == 0.5  # the scripted judge always says "A"
    candidate = next(e for e in evaluations if e.candidate_id != evaluations[0].candidate_id)
    assert candidate.score == 0.0  # win rate minus DPO's, both against the same reference
    calls = 2 * 2 * 4  # two runs, two orders, four prompts
    assert len(judge_server.seen) == calls
    expected = calls * 120 * 3.0 / 1e6
    assert store.llm_cost(campaign_id=campaign_id) == pytest.approx(expected)
    assert store.get_campaign(campaign_id).budget_used["llm_dollars"] == pytest.approx(expected)
    statuses = {c.name: c.status for c in store.list_candidates(campaign_id=campaign_id)}
    assert statuses == {"dpo": CandidateStatus.EVALUATED, "margin_hinge": CandidateStatus.EVALUATED}
    rows = {r.name: r for r in campaign_leaderboard(store, campaign_id)}
    assert rows["margin_hinge"].score is None  # no public task: nothing to select on
    assert rows["margin_hinge"].held_out_score == 0.0  # but the held-out score shows


def test_the_runner_sends_the_judge_key_beside_hf_configs_and_waits_for_long_runs(
    tmp_path: Path, tiny: dict[str, str]
) -> None:
    config = RunnerConfig(
        database_url="sqlite://", cache_dir=tmp_path, judge_api_key=Secret("sk-run-1")
    )
    assert "sk-run-1" not in repr(config)
    context = job_context(config)
    assert context.judge_api_key == Secret("sk-run-1")
    assert "sk-run-1" not in repr(context)
    assert context.cache_dir == str(tmp_path / "tinylm")
    keyless = job_context(RunnerConfig(database_url="sqlite://", cache_dir=tmp_path))
    assert keyless.judge_api_key is None
    spec = _hf_spec(_small(tiny, max_seconds=7200))
    assert dispatch_timeout(spec) == 7800.0
