"""One evaluation job as typed data, and how jobs are grouped, sized and timed before they run.

A job carries the candidate's graph JSON (never source code), the stage, task and seed, and the
stage's typed config (parsed once, by `evaluator.stage_configs.parse_stage_config`). The two
values only a worker needs are explicit fields: the tinylm reference cache directory and the hf
judge's API key (a `Secret`, never printed; never part of a config, which is archived).

`group_jobs` cuts jobs into the batches `evaluator.worker.run_batch` trains together: jobs of a
stage with a population trainer (bandit, tinylm) that share `batch_key` (stage, task, seed and
config), at most the config's `population_size` each. `job_resources` says what CPUs and GPUs a
job's task declares and `stage_timeout` how long a stage's job may run.

This module is light (no torch, Ray or sandbox): it runs nothing; `evaluator.worker` does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, cast

from evaluator.secrets import Secret
from evaluator.stage_configs import HFConfig, StageConfig, parse_stage_config

__all__ = [
    "EvalJob",
    "StageName",
    "batch_key",
    "group_jobs",
    "job_resources",
    "population_size",
    "stage_timeout",
    "trains_populations",
]

StageName = Literal["bandit", "tinylm", "hf"]
# Stages whose worker trains many losses at once (evaluator.worker's population trainers).
_POPULATION_STAGES = ("bandit", "tinylm")
# Seconds an hf job may run past its own `max_seconds`: what it does after its last step
# (held-out generation, scoring, the judge).
_HF_MARGIN_S = 600.0


@dataclass(frozen=True)
class EvalJob:
    """Everything a worker needs to evaluate one loss on one task with one seed."""

    stage: StageName
    task: str
    seed: int
    loss_name: str
    graph_json: str  # the sandbox's graph JSON (it names its inputs); never source text
    config: StageConfig  # the stage's typed config (CONFIG_CLASSES[stage])
    # DPO's job at the tinylm stage: also train the loss at each of the config's
    # `frontier_betas`, and report those points (evaluator.frontier) with the run's metrics.
    frontier: bool = False
    # Worker values, never in a config: where tinylm references are cached (shared by the
    # workers of a machine), and the hf judge's API key.
    cache_dir: str | None = None
    judge_api_key: Secret | None = None


def trains_populations(job: EvalJob) -> bool:
    """Whether the job's stage can train it in a population with others (bandit, tinylm)."""
    return job.stage in _POPULATION_STAGES


def batch_key(job: EvalJob) -> tuple[str, str, int, str]:
    """Jobs with equal keys can train as one population (same stage, task, seed and config)."""
    return job.stage, job.task, job.seed, job.config.model_dump_json()


def population_size(job: EvalJob) -> int:
    """How many jobs like `job` may share a batch: the stage config's population_size, or 1 for
    a stage without a population trainer."""
    if not trains_populations(job):
        return 1
    return getattr(job.config, "population_size", 1)


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


def job_resources(
    job: EvalJob, *, cluster_gpus: Callable[[], float]
) -> tuple[float | None, float | None]:
    """(CPUs, GPUs) a job's task declares; None: the dispatcher's default.

    An hf job takes them from its stage config; its unset `num_gpus` means 1 when the cluster
    has a GPU (asked of `cluster_gpus` only then), else 0, so the stage runs on CPU-only machines.
    """
    if job.stage != "hf":
        return None, None
    config = cast(HFConfig, parse_stage_config("hf", job.config))  # as given when typed
    gpus = config.num_gpus
    if gpus is None:
        gpus = 1.0 if cluster_gpus() >= 1 else 0.0
    return config.num_cpus, gpus


def stage_timeout(stage: str, config: StageConfig, default: float) -> float:
    """Seconds a job of this stage may run before the dispatcher kills it: `default`, or longer
    for an hf stage whose runs may take up to `max_seconds` (a run stops itself then; the margin
    covers what it does after its last step)."""
    if stage != "hf":
        return default
    hf = cast(HFConfig, parse_stage_config("hf", config))  # the class it gives for "hf"
    return max(default, hf.max_seconds + _HF_MARGIN_S)
