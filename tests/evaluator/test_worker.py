"""Batches of jobs in one call: grouped into populations, each job gets run_job's result; worker
values (the tinylm cache directory) travel as fields of the job."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evaluator.job import EvalJob, batch_key, group_jobs, population_size
from evaluator.results import RunStatus
from evaluator.stage_configs import BanditConfig, parse_stage_config
from evaluator.worker import run_batch, run_job

HF = {"model": "gpt2", "dataset": "prefs.jsonl"}


def _job(
    graph: str,
    name: str,
    *,
    stage: str = "bandit",
    seed: int = 0,
    cache_dir: str | None = None,
    **config: object,
) -> EvalJob:
    task = "tabular" if stage == "bandit" else "sorting"
    values = {**HF, **config} if stage == "hf" else config
    typed = parse_stage_config(stage, values) if stage != "nope" else BanditConfig()
    return EvalJob(stage, task, seed, name, graph, typed, cache_dir=cache_dir)  # type: ignore[arg-type]


def test_jobs_group_by_stage_task_seed_and_config_up_to_the_population_size(
    baseline_graphs: dict[str, str],
) -> None:
    dpo, ipo = baseline_graphs["dpo"], baseline_graphs["ipo"]
    jobs = [
        _job(dpo, "a", population_size=2),
        _job(ipo, "b", population_size=2),
        _job(dpo, "c", seed=1, population_size=2),  # another seed: another population
        _job(ipo, "d", population_size=2),  # the first population is full: a new one
        _job(dpo, "e", population_size=2, max_steps=10),  # another config
        _job(dpo, "f", stage="hf"),  # no population trainer: alone
        _job(dpo, "g", stage="hf"),
    ]
    groups = group_jobs(jobs)
    assert [[j.loss_name for j in g] for g in groups] == [
        ["a", "b"],
        ["d"],
        ["c"],
        ["e"],
        ["f"],
        ["g"],
    ]
    assert population_size(jobs[0]) == 2 and population_size(_job(dpo, "x")) == 16
    assert population_size(jobs[-1]) == 1
    # Config fields given in another order are the same config.
    assert batch_key(_job(dpo, "x", beta=0.2, max_steps=2)) == batch_key(
        _job(dpo, "y", max_steps=2, beta=0.2)
    )


def test_a_batch_gives_each_job_what_run_job_gives_it(baseline_graphs: dict[str, str]) -> None:
    forged = json.loads(baseline_graphs["dpo"])
    forged["nodes"][-1]["target"] = "os.system"
    jobs = [
        _job(baseline_graphs["dpo"], "dpo", max_steps=40),
        _job(json.dumps(forged), "forged", max_steps=40),  # refused on rebuild, alone
        _job(baseline_graphs["ipo"], "ipo", max_steps=40),
        _job(baseline_graphs["hinge"], "hinge", seed=3, max_steps=40),
        _job(baseline_graphs["dpo"], "unknown stage", stage="nope"),
        _job(baseline_graphs["dpo"], "no cache", stage="tinylm", max_steps=4),
    ]
    results = run_batch(jobs)
    assert [r.status for r in results] == [
        RunStatus.DONE,
        RunStatus.ERROR,
        RunStatus.DONE,
        RunStatus.DONE,
        RunStatus.ERROR,
        RunStatus.ERROR,
    ]
    for job, result in zip(jobs, results, strict=True):
        alone = run_job(job)
        assert (result.status, result.reason, result.steps) == (
            alone.status,
            alone.reason,
            alone.steps,
        )
        assert result.losses == pytest.approx(alone.losses, rel=1e-9)
        assert result.metrics == pytest.approx(alone.metrics, rel=1e-9)
    assert "GraphRejected" in results[1].reason
    assert "unknown stage 'nope'" in results[4].reason
    assert "the tinylm stage needs a cache directory" in results[5].reason


def test_a_tinylm_batch_matches_its_jobs_run_alone(
    baseline_graphs: dict[str, str], tmp_path: Path
) -> None:
    config = {
        "max_steps": 4,
        "num_train_pairs": 64,
        "num_eval_pairs": 16,
        "num_eval_prompts": 16,
    }
    jobs = [
        _job(baseline_graphs[n], n, stage="tinylm", cache_dir=str(tmp_path), **config)
        for n in ("dpo", "bco_pair")
    ]
    results = run_batch(jobs)
    for job, result in zip(jobs, results, strict=True):
        alone = run_job(job)
        assert result.status is alone.status is RunStatus.DONE
        assert result.losses == pytest.approx(alone.losses, rel=1e-4)
        assert result.metrics == pytest.approx(alone.metrics, abs=1e-3)
