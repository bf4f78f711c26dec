"""One evaluation job as plain data, and the plain functions that run jobs on a worker.

A job carries the candidate's graph JSON (never source code), the stage, task and seed, and the
stage config as a dict. `run_job` rebuilds the graph through the sandbox's op allow-list, trains,
and returns a `RunResult`. It is the task boundary: any exception becomes an ERROR result with the
exception's summary, so a broken candidate or a bug costs one evaluation, not the campaign.

An hf job's config may also carry the judge's API key as a `Secret` under JUDGE_API_KEY (never
printed); `job_resources` says what CPUs and GPUs a job's task should declare.

`run_batch` runs several jobs in one call: jobs of a stage with a population trainer (bandit,
tinylm) that share task, seed and config train together, `population_size` at a time, each getting
the result `run_job` would give it; other jobs run one at a time. `group_jobs` cuts a list of
jobs into such batches, for the dispatcher's `submit_batch`. A job with `frontier` set (DPO's, at
tinylm) also trains its loss at each of the config's `frontier_betas` in the same population, and
its result carries those points (`evaluator.frontier`): the curve every candidate is scored at.

It knows nothing of Ray (see `dispatch`), the archive or scoring.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import time
import traceback
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from evaluator.bandit import BanditConfig, run_bandit, run_bandit_population
from evaluator.frontier import point_metrics
from evaluator.hf.config import parse_hf_config
from evaluator.losses import Loss, at_beta
from evaluator.results import RunResult, RunStatus
from evaluator.secrets import Secret
from evaluator.tinylm import TinyLMConfig, run_tinylm, run_tinylm_population
from sandbox import rebuild_graph

log = logging.getLogger(__name__)

StageName = Literal["bandit", "tinylm", "hf"]
# The job-config key that carries the hf judge's API key (a `Secret`) to the worker; never a spec
# field (the spec refuses it), added by the runner from the settings.
JUDGE_API_KEY = "judge_api_key"


@dataclass(frozen=True)
class EvalJob:
    """Everything a worker needs to evaluate one loss on one task with one seed."""

    stage: StageName
    task: str
    seed: int
    loss_name: str
    graph_json: str  # the sandbox's graph JSON (it names its inputs); never source text
    config: dict[str, Any] = field(default_factory=dict)  # stage config fields, TRL names
    # DPO's job at the tinylm stage: also train the loss at each of the config's
    # `frontier_betas`, and report those points (evaluator.frontier) with the run's metrics.
    frontier: bool = False


def load_loss(name: str, graph_json: str) -> Loss:
    """Rebuild a graph (the sandbox's op allow-list enforced) and wrap it for the trainers."""
    graph = rebuild_graph(graph_json)
    return Loss(name=name, fn=graph, optional_inputs=frozenset(graph.optional_inputs))


def run_job(job: EvalJob) -> RunResult:
    """Run one job; never raises for a failing candidate (failures are statuses)."""
    started = time.perf_counter()
    if job.frontier and job.stage in _POPULATION:  # the grid trains as a population
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


# Stages with a population trainer: config class and the function that trains many losses.
_POPULATION: dict[str, tuple[type, Callable[..., list[RunResult]]]] = {
    "bandit": (BanditConfig, run_bandit_population),
    "tinylm": (TinyLMConfig, run_tinylm_population),
}


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


def trains_populations(job: EvalJob) -> bool:
    """Whether the job's stage can train it in a population with others (bandit, tinylm)."""
    return job.stage in _POPULATION


def batch_key(job: EvalJob) -> tuple[str, str, int, str]:
    """Jobs with equal keys can train as one population (same stage, task, seed and config)."""
    return job.stage, job.task, job.seed, json.dumps(job.config, sort_keys=True, default=str)


def population_size(job: EvalJob) -> int:
    """How many jobs like `job` may share a batch: the stage config's population_size, or 1 for
    a stage without a population trainer (or a config that does not build)."""
    if job.stage not in _POPULATION:
        return 1
    try:
        return _build(_POPULATION[job.stage][0], job.config).population_size
    except (TypeError, ValueError):
        return 1  # the job will fail on its own, with the config's error as its reason


def group_jobs(jobs: Sequence[EvalJob]) -> list[list[EvalJob]]:
    """`jobs` cut into batches for `run_batch` / `RayDispatcher.submit_batch`: jobs with equal
    `batch_key`, at most `population_size` each, in the order of their first job."""
    groups: dict[tuple[str, str, int, str], list[list[EvalJob]]] = {}
    for job in jobs:
        chunks = groups.setdefault(batch_key(job), [[]])
        if len(chunks[-1]) >= population_size(job):
            chunks.append([])
        chunks[-1].append(job)
    return [chunk for chunks in groups.values() for chunk in chunks]


def run_batch(jobs: Sequence[EvalJob]) -> list[RunResult]:
    """Results of `jobs`, in their order, as `run_job` would give each; never raises.

    Jobs that share a `batch_key` of a stage with a population trainer train together; a job
    whose graph does not rebuild gets its ERROR alone; anything else runs one job at a time.
    """
    results: dict[int, RunResult] = {}
    together: dict[tuple[str, str, int, str], list[int]] = {}
    for i, job in enumerate(jobs):
        if job.stage in _POPULATION:
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
    config_cls, train_all = _POPULATION[first.stage]
    by_index = {i: job for i, job in zip(indices, jobs, strict=True)}
    try:
        config = _build(config_cls, first.config)
        grid = _frontier_grid(config, [by_index[i] for i in trained], losses)
        results = train_all(
            losses + [g for _, _, g in grid], task=first.task, seed=first.seed, config=config
        )
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


def _run_stage(job: EvalJob, loss: Loss) -> RunResult:
    if job.stage == "bandit":
        config = _build(BanditConfig, job.config)
        return run_bandit(loss, task=job.task, seed=job.seed, config=config)
    if job.stage == "tinylm":
        config = _build(TinyLMConfig, job.config)
        return run_tinylm(loss, task=job.task, seed=job.seed, config=config)
    if job.stage == "hf":
        # Imported here: TRL takes seconds to import, and only hf workers need it.
        from evaluator.hf.stage import run_hf  # noqa: PLC0415

        key = job.config.get(JUDGE_API_KEY)
        return run_hf(
            loss,
            task=job.task,
            seed=job.seed,
            config=parse_hf_config(stage_config(job)),
            api_key=key.value if isinstance(key, Secret) else None,
        )
    raise ValueError(f"unknown stage {job.stage!r}; choose bandit, tinylm or hf")


def stage_config(job: EvalJob) -> dict[str, Any]:
    """The job's stage config fields, without the secrets that travel beside them."""
    return {k: v for k, v in job.config.items() if k != JUDGE_API_KEY}


def job_resources(
    job: EvalJob, *, cluster_gpus: Callable[[], float]
) -> tuple[float | None, float | None]:
    """(CPUs, GPUs) a job's task declares; None: the dispatcher's default.

    An hf job takes them from its stage config; its unset `num_gpus` means 1 when the cluster
    has a GPU (asked of `cluster_gpus` only then), else 0, so the stage runs on CPU-only machines.
    """
    if job.stage != "hf":
        return None, None
    config = parse_hf_config(stage_config(job))
    gpus = config.num_gpus
    if gpus is None:
        gpus = 1.0 if cluster_gpus() >= 1 else 0.0
    return config.num_cpus, gpus


def check_stage_config(stage: StageName, config: dict[str, Any]) -> None:
    """Raise ValueError saying what a job would find wrong with this stage config (unknown or
    mistyped fields, values the stage refuses), before any job is sent."""
    if stage == "hf":
        parse_hf_config(config)  # HFConfigError is a ValueError naming the field
        return
    cls = {"bandit": BanditConfig, "tinylm": TinyLMConfig}.get(stage)
    if cls is None:
        raise ValueError(f"unknown stage {stage!r}; choose bandit, tinylm or hf")
    values = dict(config)
    if cls is TinyLMConfig:
        values.setdefault("cache_dir", ".")  # a worker setting, not a spec field
    _build(cls, values)


# Field types a JSON-like config can get wrong: what each accepts (a bool is not a number), and
# how an error names it.
_SCALARS: dict[object, tuple[tuple[type, ...], str]] = {
    int: ((int,), "an integer"),
    float: ((int, float), "a number"),
    bool: ((bool,), "true or false"),
    str: ((str,), "a string"),
    int | None: ((int, type(None)), "an integer or null"),
    float | None: ((int, float, type(None)), "a number or null"),
}


# Resolved once per config class: `_build` runs for every job the scheduler sizes or a worker runs.
_type_hints = functools.cache(typing.get_type_hints)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _build(cls: type, values: dict[str, Any], where: str = "") -> Any:
    """`cls(**values)` from JSON-like data: lists back to tuples, path strings back to Paths,
    dicts into nested config dataclasses (a tinylm `model` or `sft`); a ValueError naming the
    field for an unknown field or a value of the wrong type."""
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = set(values) - known
    if unknown:
        raise ValueError(
            f"unknown {cls.__name__} fields {sorted(where + u for u in unknown)}; "
            f"known: {sorted(known)}"
        )
    hints = _type_hints(cls)
    converted: dict[str, Any] = {}
    for name, given in values.items():
        hint, value = hints[name], given
        if dataclasses.is_dataclass(hint) and not isinstance(given, hint):  # type: ignore[arg-type]
            if not isinstance(given, dict):
                raise ValueError(f"{where}{name} must be a mapping of {hint.__name__} fields")
            value = _build(hint, given, f"{where}{name}.")  # type: ignore[arg-type]
        elif typing.get_origin(hint) is tuple:
            numbers = typing.get_args(hint)[:1] == (float,)
            if not isinstance(given, list | tuple) or (
                numbers and not all(_is_number(x) for x in given)
            ):
                raise ValueError(f"{where}{name} must be a list of numbers, got {given!r}")
            value = tuple(given)
        elif isinstance(given, list):
            value = tuple(given)
        elif hint is Path and isinstance(given, str):
            value = Path(given)
        if hint in _SCALARS:
            accepted, label = _SCALARS[hint]
            if not isinstance(value, accepted) or (
                isinstance(value, bool) and bool not in accepted
            ):
                raise ValueError(f"{where}{name} must be {label}, got {value!r}")
        converted[name] = value
    try:
        return cls(**converted)
    except TypeError as exc:  # a nested field given as something other than a mapping
        raise ValueError(f"{where.rstrip('.') or cls.__name__}: {exc}") from None
