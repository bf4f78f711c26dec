"""Ray dispatch: the one module with `@ray.remote`, thin wrappers over `jobs.run_job`.

`RayDispatcher` starts or joins Ray (a local instance by default; an existing cluster when an
address is given), submits jobs as tasks that declare their CPU/GPU needs, and collects finished
ones as `RunResult`s. Three failures become statuses here rather than exceptions:

- a worker process that dies mid-task is retried by Ray up to `max_retries` times, then the job is
  recorded as ERROR with the reason (Ray's own account of the death);
- a job still running after `timeout_s` is cancelled with force (its worker process is killed, so
  nothing keeps running) and recorded as TIMEOUT;
- a job that asks for more CPUs or GPUs than the whole cluster has (Ray would queue it for ever)
  is answered at once as ERROR with that reason.

It does not decide what to run next or store results (the discovery engine does).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import ray
import torch
from ray.exceptions import RayError, TaskCancelledError, WorkerCrashedError

from evaluator.jobs import EvalJob, job_resources, run_job
from evaluator.results import RunResult, RunStatus

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DispatchConfig:
    """How jobs are sent to Ray."""

    address: str | None = None  # an existing cluster ("auto", "ray://head:10001"); None: local
    num_cpus: float = 1.0  # CPUs each task declares
    num_gpus: float = 0.0  # GPUs each task declares (hf jobs declare their stage config's)
    max_retries: int = 2  # re-runs of a task whose worker process died; then ERROR
    timeout_s: float = 1800.0  # wall clock per job from submission; then killed, TIMEOUT
    local_num_cpus: int | None = None  # CPUs of a local instance; None lets Ray count them


@ray.remote
def _run_job_task(job: EvalJob) -> RunResult:
    # Torch would start one thread per core in every worker; a task gets the CPUs it declared.
    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1.0)
    torch.set_num_threads(max(1, int(cpus)))
    return run_job(job)


@ray.remote
def _warm_up() -> None:
    # Nothing to do: unpickling this function imports this module, and with it torch, transformers
    # and the stages, which is what a worker's first real task would otherwise wait for.
    return None


@dataclass
class _Pending:
    job: EvalJob
    submitted: float


class RayDispatcher:
    """Submit jobs, collect results. Call `start()` first; `close()` leaves a joined cluster up."""

    def __init__(self, config: DispatchConfig) -> None:
        self.config = config
        self._pending: dict[ray.ObjectRef, _Pending] = {}
        self._warming: list[ray.ObjectRef] = []  # warm-up tasks, never waited for
        self._started_here = False

    def start(self) -> None:
        if ray.is_initialized():
            return
        if self.config.address:
            ray.init(address=self.config.address, log_to_driver=False)
        else:
            ray.init(
                num_cpus=self.config.local_num_cpus,
                include_dashboard=False,
                log_to_driver=False,
                # A local instance talks to itself only: keep it on loopback.
                _node_ip_address="127.0.0.1",
            )
            self._started_here = True

    def warm_up(self) -> None:
        """Start one worker per CPU now and let each import the evaluator, without waiting:
        the first real jobs then find workers ready."""
        cpus = int(ray.available_resources().get("CPU", 0) // max(self.config.num_cpus, 1e-3))
        self._warming = [
            _warm_up.options(num_cpus=self.config.num_cpus).remote() for _ in range(cpus)
        ]

    def close(self) -> None:
        for ref in list(self._pending):
            ray.cancel(ref, force=True)
        self._pending.clear()
        if self._started_here:
            ray.shutdown()
            self._started_here = False

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    def submit(self, job: EvalJob) -> None:
        cpus, gpus = job_resources(job, cluster_gpus=lambda: _cluster_total("GPU"))
        num_cpus = self.config.num_cpus if cpus is None else cpus
        num_gpus = self.config.num_gpus if gpus is None else gpus
        short = {}  # resource -> (asked, the cluster's total), for a job with its own needs
        if (cpus, gpus) != (None, None):
            for resource, asked in (("CPU", num_cpus), ("GPU", num_gpus)):
                if asked > (total := _cluster_total(resource)):
                    short[resource] = (asked, total)
        if short:
            # Ray would keep an infeasible task waiting for ever: answer at once, with the reason.
            wants = ", ".join(
                f"{v:g} {k} (the cluster has {have:g})" for k, (v, have) in short.items()
            )
            ref = ray.put(
                RunResult(
                    status=RunStatus.ERROR,
                    reason=f"the {job.stage} job asks for {wants}: it could never run. Lower "
                    "num_cpus / num_gpus in the stage config (num_gpus: 0 trains on CPUs) or add "
                    "workers to the cluster",
                )
            )
        else:
            ref = _run_job_task.options(
                num_cpus=num_cpus,
                num_gpus=num_gpus,
                max_retries=self.config.max_retries,
                retry_exceptions=False,  # run_job turns candidate failures into statuses itself
            ).remote(job)
        self._pending[ref] = _Pending(job=job, submitted=time.monotonic())

    def collect(self, timeout_s: float = 0.0) -> list[tuple[EvalJob, RunResult]]:
        """Results of the jobs that finished within `timeout_s` (or timed out), oldest first."""
        if not self._pending:
            return []
        refs = list(self._pending)
        # Wait for the first result only, then take whatever else is ready: waiting for all of
        # them would hold finished results (and idle workers) until the timeout.
        ready, _ = ray.wait(refs, num_returns=1, timeout=timeout_s, fetch_local=True)
        if ready:
            ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0, fetch_local=True)
        done = [(self._pending.pop(ref).job, self._result(ref)) for ref in ready]
        done.extend(self._expire())
        return done

    def run_all(self, jobs: list[EvalJob], poll_s: float = 0.2) -> list[RunResult]:
        """Submit `jobs` and wait for every result, returned in the order of `jobs`."""
        for job in jobs:
            self.submit(job)
        results: dict[int, RunResult] = {}
        ids = {id(job): i for i, job in enumerate(jobs)}
        while len(results) < len(jobs):
            for job, result in self.collect(timeout_s=poll_s):
                results[ids[id(job)]] = result
        return [results[i] for i in range(len(jobs))]

    def _result(self, ref: ray.ObjectRef) -> RunResult:
        try:
            return ray.get(ref)
        except TaskCancelledError:
            return RunResult(status=RunStatus.TIMEOUT, reason="cancelled")
        except WorkerCrashedError as exc:
            return RunResult(
                status=RunStatus.ERROR,
                reason=f"the worker process died {self.config.max_retries + 1} times "
                f"(Ray retried it {self.config.max_retries} times): {_first_line(exc)}",
            )
        except RayError as exc:
            return RunResult(status=RunStatus.ERROR, reason=f"ray: {_first_line(exc)}")

    def _expire(self) -> list[tuple[EvalJob, RunResult]]:
        now = time.monotonic()
        expired = [
            ref for ref, p in self._pending.items() if now - p.submitted > self.config.timeout_s
        ]
        out = []
        for ref in expired:
            pending = self._pending.pop(ref)
            ray.cancel(ref, force=True)  # kills the worker process: nothing runs on
            log.warning(
                "job %s/%s seed %s timed out", pending.job.stage, pending.job.task, pending.job.seed
            )
            out.append(
                (
                    pending.job,
                    RunResult(
                        status=RunStatus.TIMEOUT,
                        reason=f"still running after {self.config.timeout_s:g} s; killed",
                        seconds=now - pending.submitted,
                    ),
                )
            )
        return out


def _cluster_total(resource: str) -> float:
    return float(ray.cluster_resources().get(resource, 0.0))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__
