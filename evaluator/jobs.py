"""One evaluation job as plain data, and the plain function that runs it on a worker.

A job carries the candidate's graph JSON (never source code), the stage, task and seed, and the
stage config as a dict. `run_job` rebuilds the graph through the sandbox's op allow-list, trains,
and returns a `RunResult`. It is the task boundary: any exception becomes an ERROR result with the
exception's summary, so a broken candidate or a bug costs one evaluation, not the campaign.

It knows nothing of Ray (see `dispatch`), the archive or scoring.
"""

from __future__ import annotations

import dataclasses
import logging
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from evaluator.bandit import BanditConfig, run_bandit
from evaluator.losses import Loss
from evaluator.results import RunResult, RunStatus
from evaluator.tinylm import TinyLMConfig, run_tinylm
from sandbox import rebuild_graph

log = logging.getLogger(__name__)

StageName = Literal["bandit", "tinylm"]


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
    raise ValueError(f"unknown stage {job.stage!r}; choose bandit or tinylm")


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
