"""DPO at another beta is no discovery: written as a candidate loss, DPO with beta x1/2, x2 and x4
scores about 0 against DPO's reward-KL frontier on every tinylm task, public and held-out.

The candidates and DPO's frontier job go through the worker's path (`run_batch`: graphs rebuilt
by the sandbox's allow-list, trained as one population), then are paired by `summarize`, as
`lossforge evaluate` does. Tiny settings: the claim is about the scoring, not the training.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from evaluator.baselines import BASELINES
from evaluator.compare import plan, summarize
from evaluator.results import RunStatus
from evaluator.tinylm.stage import HELD_OUT_TASKS, PUBLIC_TASKS, TASKS, TinyLMConfig
from evaluator.worker import run_batch
from sandbox import Candidate, Sandbox, SandboxConfig
from tests.evaluator.configs import with_fields

FACTORS = {"x1/2": 0.5, "x2": 2.0, "x4": 4.0}
SEEDS = range(2)


def dpo_at(factor: float) -> str:
    return (
        "def loss(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps,"
        " ref_rejected_logps, beta):\n"
        "    margin = (policy_chosen_logps - ref_chosen_logps) - (policy_rejected_logps"
        " - ref_rejected_logps)\n"
        f"    return -F.logsigmoid({factor} * beta * margin)\n"
    )


@pytest.fixture(scope="module")
def graphs() -> dict[str, str]:
    out = {}
    sources = {"dpo": BASELINES["dpo"].source} | {n: dpo_at(f) for n, f in FACTORS.items()}
    with Sandbox(SandboxConfig(pool_size=1)) as sandbox:
        for name, source in sources.items():
            verdict = sandbox.validate(Candidate(name=name, thought="", code=source))
            assert verdict.accepted, verdict.reason
            out[name] = verdict.graph_json or ""
    return out


def test_the_registry_has_public_and_held_out_families() -> None:
    assert len(PUBLIC_TASKS) >= 2 and len(HELD_OUT_TASKS) >= 1


@pytest.mark.parametrize("task", sorted(TASKS))
def test_dpo_at_another_beta_scores_about_zero(
    task: str, graphs: dict[str, str], tinylm_config: TinyLMConfig, tinylm_cache: Path
) -> None:
    config = with_fields(
        tinylm_config, max_steps=8, num_train_pairs=256, num_eval_pairs=32, num_eval_prompts=64
    )
    plans = {
        name: plan(
            stage="tinylm",
            tasks=[task],
            seeds=SEEDS,
            candidate=(name, graphs[name]),
            baseline=("dpo", graphs["dpo"]),
            config=config,
            cache_dir=str(tinylm_cache),
        )
        for name in FACTORS
    }
    for jobs in plans.values():
        assert all(j.frontier for j in jobs[1::2]) and not any(j.frontier for j in jobs[0::2])
    # DPO's runs (and its frontier) are the same in every plan: train them once, with all three.
    dpo_jobs = next(iter(plans.values()))[1::2]
    assert all(jobs[1::2] == dpo_jobs for jobs in plans.values())
    mine = [job for jobs in plans.values() for job in jobs[0::2]]
    results = run_batch(mine + dpo_jobs)
    assert all(r.status is RunStatus.DONE for r in results), [r.reason for r in results]
    dpo_results = results[len(mine) :]
    raw: list[float] = []
    for index, (name, jobs) in enumerate(plans.items()):
        own = results[index * len(dpo_jobs) : (index + 1) * len(dpo_jobs)]
        paired = [r for pair in zip(own, dpo_results, strict=True) for r in pair]
        [comparison] = summarize("tinylm", jobs, paired)
        score = comparison.score
        assert score.seeds == len(SEEDS)
        assert score.low is not None and score.high is not None
        assert score.low <= 0.0 <= score.high, f"{name} on {task}: {score}"
        assert abs(score.score) < 0.01  # type: ignore[arg-type]
        raw += [
            c.metrics["reward/mean"] - d.metrics["reward/mean"]
            for c, d in zip(comparison.candidate, comparison.baseline, strict=True)
        ]
    # ... while the old score, reward minus DPO's at beta 1, called the beta changes changes.
    assert max(abs(v) for v in raw) > 1e-3, raw
