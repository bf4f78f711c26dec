"""A candidate against DPO at one stage: the paired jobs to run, and what their results say.

`plan` makes, for every task and seed, one job for the candidate and one for the DPO baseline
under identical conditions (same stage config, task and seed, so the same data and steps).
`summarize` pairs the results back up into per-task scores vs DPO with their spread over seeds.
Running the jobs is the dispatcher's business; this module only plans and reads.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from evaluator.bandit import FAMILIES
from evaluator.hf.config import parse_hf_config
from evaluator.jobs import EvalJob, StageName, stage_config
from evaluator.results import RunResult, RunStatus
from evaluator.scoring import SCORE_METRICS, StageScore, aggregate, score_metric, seed_score
from evaluator.tinylm import TASKS


def stage_tasks(stage: StageName, config: Mapping[str, Any] | None = None) -> dict[str, bool]:
    """The stage's tasks, each mapped to whether it is held out (private to the proposer).

    The hf stage's tasks come from its config (one per beta of its grid, all held out or none).
    """
    if stage == "bandit":
        return dict.fromkeys(FAMILIES, False)
    if stage == "tinylm":
        return {name: task.held_out for name, task in TASKS.items()}
    if stage == "hf":
        if config is None:
            raise ValueError("the hf stage's tasks come from its config (beta or betas); pass it")
        return parse_hf_config(config).tasks
    raise ValueError(f"unknown stage {stage!r}; choose bandit, tinylm or hf")


@dataclass(frozen=True)
class TaskComparison:
    """One task: every seed's run for the candidate and for DPO, and the score they give."""

    task: str
    held_out: bool
    candidate: list[RunResult]  # by seed
    baseline: list[RunResult]  # by seed, same seeds
    score: StageScore  # candidate minus DPO on the stage's metric

    def metric_mean(self, runs: Sequence[RunResult], name: str) -> float | None:
        values = [r.metrics[name] for r in runs if r.status is RunStatus.DONE and name in r.metrics]
        return sum(values) / len(values) if values else None


def plan(
    *,
    stage: StageName,
    tasks: Sequence[str],
    seeds: Sequence[int],
    candidate: tuple[str, str],
    baseline: tuple[str, str],
    config: dict[str, Any],
) -> list[EvalJob]:
    """Jobs in pairs: (candidate, DPO) for each task and seed. `candidate`: (name, graph JSON)."""
    jobs = []
    for task in tasks:
        for seed in seeds:
            for name, graph in (candidate, baseline):
                jobs.append(
                    EvalJob(
                        stage=stage,
                        task=task,
                        seed=seed,
                        loss_name=name,
                        graph_json=graph,
                        config=config,
                    )
                )
    return jobs


def summarize(
    stage: StageName, jobs: Sequence[EvalJob], results: Sequence[RunResult]
) -> list[TaskComparison]:
    """Pair up the results of `plan`'s jobs (in the same order) into per-task comparisons."""
    config = stage_config(jobs[0]) if jobs else {}
    held_out = stage_tasks(stage, config)
    metric = score_metric(stage, config)
    by_task: dict[str, tuple[list[RunResult], list[RunResult]]] = {}
    pairs = zip(jobs[0::2], results[0::2], results[1::2], strict=True)
    for job, candidate, baseline in pairs:
        runs = by_task.setdefault(job.task, ([], []))
        runs[0].append(candidate)
        runs[1].append(baseline)
    return [
        TaskComparison(
            task=task,
            held_out=held_out.get(task, False),
            candidate=cand,
            baseline=base,
            score=aggregate(
                [seed_score(stage, c, b, metric=metric) for c, b in zip(cand, base, strict=True)]
            ),
        )
        for task, (cand, base) in by_task.items()
    ]


__all__ = ["SCORE_METRICS", "TaskComparison", "plan", "score_metric", "stage_tasks", "summarize"]
