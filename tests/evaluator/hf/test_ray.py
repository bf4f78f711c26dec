"""The hf stage end to end through a real local Ray: a candidate and DPO under the same seed,
reward-model and judge scoring, two reference models, and resources a cluster cannot give."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from evaluator.compare import plan, summarize
from evaluator.dispatch import DispatchConfig, RayDispatcher
from evaluator.frontier import Frontier, Point
from evaluator.job import EvalJob
from evaluator.results import RunStatus
from evaluator.secrets import Secret
from evaluator.stage_configs import parse_stage_config
from tests.evaluator.hf.conftest import HFFiles
from tests.evaluator.hf.judge_server import ScriptedJudge

KEY = "sk-ray-4be1"
Config = Callable[..., dict[str, Any]]


def _run(jobs: list[EvalJob]) -> list[Any]:
    dispatcher = RayDispatcher(DispatchConfig())
    dispatcher.start()
    try:
        return dispatcher.run_all(jobs)
    finally:
        dispatcher.close()


def test_candidate_and_dpo_train_on_workers_and_are_scored_by_reward_and_judge(
    ray_local: str,
    graphs: dict[str, str],
    hf_config: Config,
    hf_files: HFFiles,
    judge_server: ScriptedJudge,
) -> None:
    config = hf_config(
        reward_model=str(hf_files.reward),
        judge={"base_url": judge_server.base_url, "model": "judge-1", "completion_price": 4.0},
        score_metric="reward/mean",
    )
    jobs = plan(
        stage="hf",
        tasks=["beta=0.1"],
        seeds=[0],
        candidate=("lrml", graphs["lrml"]),
        baseline=("dpo", graphs["dpo"]),
        config=config,
        judge_api_key=Secret(KEY),
    )
    assert KEY not in repr(jobs)
    results = _run(jobs)
    for result in results:
        assert result.status is RunStatus.DONE, result.reason
        assert result.metrics["params/trained_changed"] == 1.0  # training moved the weights
        assert result.steps == 6
        for name in ("reward/mean", "reward/ref_mean", "kl/ref", "rewards/accuracies"):
            assert name in result.metrics
        assert result.metrics["judge/win_rate"] == 0.5  # the scripted judge always says "A"
        assert len(result.llm_calls) == 16
        assert all(c.cost_usd == 4.0 / 1e6 and c.error is None for c in result.llm_calls)
    candidate, dpo = results
    assert candidate.metrics != dpo.metrics  # two losses, same data and seed
    # The worker got the key (the server saw it) and gave it back nowhere.
    assert set(judge_server.authorizations) == {f"Bearer {KEY}"}
    assert all(KEY not in repr(r) for r in results)
    (comparison,) = summarize("hf", jobs, results)
    assert comparison.task == "beta=0.1" and not comparison.held_out
    # reward/mean with KL measured: against DPO's frontier, here the line from the reference
    # (KL 0, its reward) through DPO's one point of the grid, flat beyond it.
    c, d = candidate.metrics, dpo.metrics
    frontier = Frontier.build(
        [Point(0.1, d["kl/ref"], d["reward/mean"])], origin_reward=d["reward/ref_mean"]
    )
    expected = c["reward/mean"] - frontier(c["kl/ref"])
    assert comparison.score.score == pytest.approx(expected, abs=1e-6)


def test_two_local_reference_models_on_a_worker(
    ray_local: str, graphs: dict[str, str], hf_config: Config, hf_files: HFFiles
) -> None:
    config = hf_config(
        ref_models=[str(hf_files.policy), str(hf_files.other_ref)],
        betas=[0.1, 0.3],
        num_eval_prompts=0,
    )
    jobs = plan(
        stage="hf",
        tasks=["beta=0.3"],
        seeds=[1],
        candidate=("mrpo", graphs["mrpo"]),  # takes refs_chosen_logps / refs_rejected_logps
        baseline=("dpo", graphs["dpo"]),
        config=config,
    )
    for result in _run(jobs):
        assert result.status is RunStatus.DONE, result.reason
        assert result.metrics["params/trained_changed"] == 1.0
        assert "kl/ref" not in result.metrics  # no prompts sampled
        assert result.metrics["rewards/accuracies"] > 0.5


def test_a_job_asking_for_a_gpu_the_cluster_lacks_fails_at_once(
    ray_local: str, graphs: dict[str, str], hf_config: Config
) -> None:
    job = EvalJob(
        stage="hf",
        task="beta=0.1",
        seed=0,
        loss_name="dpo",
        graph_json=graphs["dpo"],
        config=parse_stage_config("hf", hf_config(num_gpus=1)),
    )
    (result,) = _run([job])
    assert result.status is RunStatus.ERROR
    assert "asks for 1 GPU (the cluster has 0)" in (result.reason or "")
    assert "num_gpus: 0" in (result.reason or "")
