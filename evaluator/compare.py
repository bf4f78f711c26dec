"""A candidate against DPO at one stage: the paired jobs to run, and what their results say.

`plan` makes, for every task and seed, one job for the candidate and one for the DPO baseline
under identical conditions (same stage config, task and seed, so the same data and steps).
`summarize` pairs the results back up into per-task scores vs DPO with their spread over seeds.
Running the jobs is the dispatcher's business; this module only plans and reads, and imports
nothing heavy (no torch or Ray: the spec parser and the CLI use it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from evaluator.catalogue import stage_tasks
from evaluator.job import EvalJob, StageName
from evaluator.results import RunResult, RunStatus
from evaluator.scoring import (
    SCORE_METRICS,
    StageScore,
    aggregate,
    frontier_tasks,
    score_metric,
    versus_dpo,
)
from evaluator.secrets import Secret
from evaluator.stage_configs import StageConfig, parse_stage_config


@dataclass(frozen=True)
class TaskComparison:
    """One task: every seed's run for the candidate and for DPO, and the score they give."""

    task: str
    held_out: bool
    candidate: list[RunResult]  # by seed
    baseline: list[RunResult]  # by seed, same seeds
    score: StageScore  # candidate minus DPO on the stage's metric
    seeds: list[int]  # the seeds of the runs, in order
    differences: list[float | None]  # by seed: the paired difference; None where a run failed

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
    config: StageConfig | Mapping[str, Any],
    cache_dir: str | None = None,
    judge_api_key: Secret | None = None,
) -> list[EvalJob]:
    """Jobs in pairs: (candidate, DPO) for each task and seed. `candidate`: (name, graph JSON).
    DPO's tinylm jobs also train its beta grid: the frontier the candidate is scored against.
    `config` is parsed once here (plain data or a typed config); `cache_dir` and
    `judge_api_key` are the worker values the jobs carry (tinylm references, the hf judge)."""
    typed = parse_stage_config(stage, config)
    jobs = []
    for task in tasks:
        for seed in seeds:
            for (name, graph), is_dpo in ((candidate, False), (baseline, True)):
                jobs.append(
                    EvalJob(
                        stage=stage,
                        task=task,
                        seed=seed,
                        loss_name=name,
                        graph_json=graph,
                        config=typed,
                        frontier=is_dpo and stage == "tinylm",
                        cache_dir=cache_dir,
                        judge_api_key=judge_api_key,
                    )
                )
    return jobs


def summarize(
    stage: StageName, jobs: Sequence[EvalJob], results: Sequence[RunResult]
) -> list[TaskComparison]:
    """Pair up the results of `plan`'s jobs (in the same order) into per-task comparisons."""
    config = jobs[0].config if jobs else None
    held_out = stage_tasks(stage, config)
    metric = score_metric(stage, config)
    by_task: dict[str, tuple[list[RunResult], list[RunResult]]] = {}
    dpo: dict[tuple[str, int], RunResult] = {}
    pairs = list(zip(jobs[0::2], results[0::2], results[1::2], strict=True))
    for job, candidate, baseline in pairs:
        runs = by_task.setdefault(job.task, ([], []))
        runs[0].append(candidate)
        runs[1].append(baseline)
        dpo[(job.task, job.seed)] = baseline
    tasks = list(by_task)

    def difference(task: str, seed: int, candidate: RunResult) -> float | None:
        baseline = dpo[(task, seed)]
        if candidate.status is not RunStatus.DONE or baseline.status is not RunStatus.DONE:
            return None
        grid = [
            dpo[(t, seed)].metrics
            for t in frontier_tasks(stage, task, tasks, metric)
            if dpo[(t, seed)].status is RunStatus.DONE
        ]
        return versus_dpo(stage, metric, candidate.metrics, baseline.metrics, grid=grid)

    per_task: dict[str, list[float | None]] = {}
    seeds: dict[str, list[int]] = {}
    for job, candidate, _ in pairs:
        per_task.setdefault(job.task, []).append(difference(job.task, job.seed, candidate))
        seeds.setdefault(job.task, []).append(job.seed)
    return [
        TaskComparison(
            task=task,
            held_out=held_out.get(task, False),
            candidate=cand,
            baseline=base,
            score=aggregate(per_task[task]),
            seeds=seeds[task],
            differences=per_task[task],
        )
        for task, (cand, base) in by_task.items()
    ]


def pooled(comparisons: Sequence[TaskComparison], *, held_out: bool) -> StageScore:
    """The score over the public (or held-out) tasks: per seed, the mean of the tasks'
    differences (a seed counts only where every such task finished), paired over seeds."""
    chosen = [c for c in comparisons if c.held_out == held_out]
    if not chosen:
        return aggregate([])
    per_seed: list[float | None] = []
    for seed in chosen[0].seeds:
        values = [dict(zip(c.seeds, c.differences, strict=True)).get(seed) for c in chosen]
        per_seed.append(
            None if any(v is None for v in values) else sum(values) / len(values)  # type: ignore[arg-type]
        )
    return aggregate(per_seed)


__all__ = [
    "SCORE_METRICS",
    "TaskComparison",
    "plan",
    "pooled",
    "score_metric",
    "stage_tasks",
    "summarize",
]
