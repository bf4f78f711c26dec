"""Running jobs on a worker: rebuild the candidate's graph, train, and return a `RunResult`.

`run_job` rebuilds the graph through the sandbox's op allow-list, trains at the job's stage, and
returns a `RunResult`. It is the task boundary: any exception becomes an ERROR result with the
exception's summary, so a broken candidate or a bug costs one evaluation, not the campaign.

`run_batch` runs several jobs in one call: jobs of a stage with a population trainer (bandit,
tinylm) that share task, seed and config (`evaluator.job.batch_key`) train together,
`population_size` at a time, each getting the result `run_job` would give it; other jobs run one
at a time. A job with `frontier` set (DPO's, at tinylm) also trains its loss at each of the
config's `frontier_betas` in the same population, and its result carries those points
(`evaluator.frontier`): the curve every candidate is scored at.

A tinylm job needs its `cache_dir` (where references are cached) and an hf job with a judge its
`judge_api_key`: both are fields of the job. This module imports torch and the stages; it knows
nothing of Ray (see `dispatch`), the archive or scoring, and how jobs are grouped lives in
`evaluator.job`.
"""

from __future__ import annotations

import dataclasses
import logging
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from evaluator.bandit import run_bandit, run_bandit_population
from evaluator.frontier import point_metrics
from evaluator.job import EvalJob, batch_key, trains_populations
from evaluator.losses import Loss, at_beta
from evaluator.results import RunResult, RunStatus
from evaluator.stage_configs import (
    BanditConfig,
    HFConfig,
    StageConfig,
    TinyLMConfig,
    parse_stage_config,
)
from evaluator.tinylm import run_tinylm, run_tinylm_population
from sandbox import rebuild_graph

__all__ = ["load_loss", "run_batch", "run_job", "warm_up"]

log = logging.getLogger(__name__)


def load_loss(name: str, graph_json: str) -> Loss:
    """Rebuild a graph (the sandbox's op allow-list enforced) and wrap it for the trainers."""
    graph = rebuild_graph(graph_json)
    return Loss(name=name, fn=graph, optional_inputs=frozenset(graph.optional_inputs))


def run_job(job: EvalJob) -> RunResult:
    """Run one job; never raises for a failing candidate (failures are statuses)."""
    started = time.perf_counter()
    if job.frontier and trains_populations(job):  # the grid trains as a population
        return _run_population([job], [0])[0]
    try:
        loss = load_loss(job.loss_name, job.graph_json)
        return _run_stage(job, loss)
    except Exception as exc:
        return _failed(job, exc, time.perf_counter() - started)


def _failed(job: EvalJob, exc: Exception, seconds: float) -> RunResult:
    """The result of a job whose run raised `exc` (the task boundary's conversion)."""
    if isinstance(exc, MemoryError):
        return RunResult(
            status=RunStatus.OOM,
            reason=f"out of memory during {job.stage}/{job.task} seed {job.seed}",
            seconds=seconds,
        )
    log.warning(
        "job %s/%s seed %s failed:\n%s",
        job.stage,
        job.task,
        job.seed,
        "".join(traceback.format_exception(exc)),
    )
    return RunResult(
        status=RunStatus.ERROR, reason=f"{type(exc).__name__}: {str(exc)[:500]}", seconds=seconds
    )


def warm_up() -> None:
    """Load what the first bandit or tinylm job of a fresh worker process would pay for: the
    stages' modules and the first calls into torch (one step of a tiny bandit run)."""
    import torch.nn.functional as F  # noqa: PLC0415

    from evaluator.tinylm import model  # noqa: PLC0415, F401

    def dpo(
        policy_chosen_logps: Any,
        policy_rejected_logps: Any,
        ref_chosen_logps: Any,
        ref_rejected_logps: Any,
        beta: Any,
    ) -> Any:  # DPO eq. 7, as the baseline
        margin = (policy_chosen_logps - ref_chosen_logps) - (
            policy_rejected_logps - ref_rejected_logps
        )
        return -F.logsigmoid(beta * margin)

    run_bandit(
        Loss(name="warm-up", fn=dpo), task="tabular", seed=0, config=BanditConfig(max_steps=1)
    )


def run_batch(jobs: Sequence[EvalJob]) -> list[RunResult]:
    """Results of `jobs`, in their order, as `run_job` would give each; never raises.

    Jobs that share a `batch_key` of a stage with a population trainer train together; a job
    whose graph does not rebuild gets its ERROR alone; anything else runs one job at a time.
    """
    results: dict[int, RunResult] = {}
    together: dict[tuple[str, str, int, str], list[int]] = {}
    for i, job in enumerate(jobs):
        if trains_populations(job):
            together.setdefault(batch_key(job), []).append(i)
        else:
            results[i] = run_job(job)
    for indices in together.values():
        results.update(_run_population([jobs[i] for i in indices], indices))
    return [results[i] for i in range(len(jobs))]


def _run_population(jobs: list[EvalJob], indices: list[int]) -> dict[int, RunResult]:
    """One population (jobs with one batch key): results by the jobs' indices in the batch."""
    first = jobs[0]
    started = time.perf_counter()
    out: dict[int, RunResult] = {}
    losses: list[Loss] = []
    trained: list[int] = []
    for index, job in zip(indices, jobs, strict=True):
        try:
            losses.append(load_loss(job.loss_name, job.graph_json))
            trained.append(index)
        except Exception as exc:  # this candidate's graph only
            out[index] = _failed(job, exc, 0.0)
    if not losses:
        return out
    by_index = {i: job for i, job in zip(indices, jobs, strict=True)}
    try:
        config = parse_stage_config(first.stage, first.config)
        grid = _frontier_grid(config, [by_index[i] for i in trained], losses)
        results = _train_population(first, losses + [g for _, _, g in grid], config)
    except Exception as exc:  # a bad config or task, or a bug: every job of the population
        seconds = (time.perf_counter() - started) / len(trained)
        return out | {i: _failed(by_index[i], exc, seconds) for i in trained}
    results = _with_frontiers(config, results, len(losses), grid)
    # Each result says how many trained together (stored with the evaluation's timings).
    together = {"population": float(len(trained) + len(grid))}
    return out | {
        i: dataclasses.replace(r, timings={**r.timings, **together})
        for i, r in zip(trained, results, strict=True)
    }


def _frontier_grid(
    config: Any, jobs: list[EvalJob], losses: list[Loss]
) -> list[tuple[int, float, Loss]]:
    """(position of the loss, beta, the loss at that beta) for every frontier job's grid."""
    betas = getattr(config, "frontier_betas", ())
    return [
        (position, beta, at_beta(loss, beta / config.beta))
        for position, (job, loss) in enumerate(zip(jobs, losses, strict=True))
        if job.frontier
        for beta in betas
        if beta != config.beta
    ]


def _with_frontiers(
    config: Any, results: list[RunResult], n: int, grid: list[tuple[int, float, Loss]]
) -> list[RunResult]:
    """The first `n` results, a frontier job's carrying its grid's points (the runs after the
    first `n`) in its metrics; a grid run that failed is left out of the frontier."""
    out = list(results[:n])
    grid_runs = [(p, beta, run) for (p, beta, _), run in zip(grid, results[n:], strict=True)]
    for position in sorted({p for p, _, _ in grid}):
        main = out[position]
        if main.status is not RunStatus.DONE:
            continue
        mine = [(beta, run) for p, beta, run in grid_runs if p == position]
        points: dict[str, float] = {}
        for beta, run in [(config.beta, main), *mine]:
            if run.status is RunStatus.DONE:
                points |= point_metrics(beta, run.metrics["kl/ref"], run.metrics["reward/mean"])
        # The grid's time is the frontier job's: summing the evaluations' seconds counts it once.
        seconds = main.seconds + sum(run.seconds for _, run in mine)
        out[position] = dataclasses.replace(
            main, metrics={**main.metrics, **points}, seconds=seconds
        )
    return out


def _train_population(job: EvalJob, losses: list[Loss], config: StageConfig) -> list[RunResult]:
    """Results of `losses` trained as one population at `job`'s stage, task and seed."""
    if isinstance(config, BanditConfig):
        return run_bandit_population(losses, task=job.task, seed=job.seed, config=config)
    if isinstance(config, TinyLMConfig):
        return run_tinylm_population(
            losses, task=job.task, seed=job.seed, config=config, cache_dir=_cache_dir(job)
        )
    raise ValueError(f"the {job.stage} stage has no population trainer; run its jobs one by one")


def _run_stage(job: EvalJob, loss: Loss) -> RunResult:
    config = parse_stage_config(job.stage, job.config)
    if isinstance(config, BanditConfig):
        return run_bandit(loss, task=job.task, seed=job.seed, config=config)
    if isinstance(config, TinyLMConfig):
        return run_tinylm(
            loss, task=job.task, seed=job.seed, config=config, cache_dir=_cache_dir(job)
        )
    # Imported here: TRL takes seconds to import, and only hf workers need it.
    from evaluator.hf.stage import run_hf  # noqa: PLC0415

    if not isinstance(config, HFConfig):  # a stage added to CONFIG_CLASSES but not here
        raise ValueError(f"no runner for the {job.stage} stage; add one to evaluator.worker")
    key = job.judge_api_key
    return run_hf(
        loss,
        task=job.task,
        seed=job.seed,
        config=config,
        api_key=key.value if key is not None else None,
    )


def _cache_dir(job: EvalJob) -> Path:
    """Where the job's tinylm references are cached; a job without one cannot run."""
    if job.cache_dir is None:
        raise ValueError(
            "the tinylm stage needs a cache directory for its references: set the job's "
            "cache_dir (the runner's cache_dir setting)"
        )
    return Path(job.cache_dir)
