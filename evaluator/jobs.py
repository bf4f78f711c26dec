"""One evaluation job as plain data, and the plain function that runs it on a worker.

A job carries the candidate's graph JSON (never source code), the stage, task and seed, and the
stage config as a dict. `run_job` rebuilds the graph through the sandbox's op allow-list, trains,
and returns a `RunResult`. It is the task boundary: any exception becomes an ERROR result with the
exception's summary, so a broken candidate or a bug costs one evaluation, not the campaign.

An hf job's config may also carry the judge's API key as a `Secret` under JUDGE_API_KEY (never
printed); `job_resources` says what CPUs and GPUs a job's task should declare.

It knows nothing of Ray (see `dispatch`), the archive or scoring.
"""

from __future__ import annotations

import dataclasses
import logging
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from evaluator.bandit import BanditConfig, run_bandit
from evaluator.hf.config import parse_hf_config
from evaluator.losses import Loss
from evaluator.results import RunResult, RunStatus
from evaluator.secrets import Secret
from evaluator.tinylm import TinyLMConfig, run_tinylm
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


def load_loss(name: str, graph_json: str) -> Loss:
    """Rebuild a graph (the sandbox's op allow-list enforced) and wrap it for the trainers."""
    graph = rebuild_graph(graph_json)
    return Loss(name=name, fn=graph, optional_inputs=frozenset(graph.optional_inputs))


def run_job(job: EvalJob) -> RunResult:
    """Run one job; never raises for a failing candidate (failures are statuses)."""
    started = time.perf_counter()
    try:
        loss = load_loss(job.loss_name, job.graph_json)
        return _run_stage(job, loss)
    except MemoryError:
        return RunResult(
            status=RunStatus.OOM,
            reason=f"out of memory during {job.stage}/{job.task} seed {job.seed}",
            seconds=time.perf_counter() - started,
        )
    except Exception as exc:
        log.warning(
            "job %s/%s seed %s failed:\n%s", job.stage, job.task, job.seed, traceback.format_exc()
        )
        return RunResult(
            status=RunStatus.ERROR,
            reason=f"{type(exc).__name__}: {str(exc)[:500]}",
            seconds=time.perf_counter() - started,
        )


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


def _build(cls: type, values: dict[str, Any]) -> Any:
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = set(values) - known
    if unknown:
        raise ValueError(f"unknown {cls.__name__} fields {sorted(unknown)}; known: {sorted(known)}")
    # Job configs travel as JSON-like data: lists back to tuples, path strings back to Paths.
    converted = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    if "cache_dir" in converted:
        converted["cache_dir"] = Path(converted["cache_dir"])
    return cls(**converted)
