"""Ray dispatch: the one module with `@ray.remote`, thin wrappers over `worker.run_job`/`run_batch`.

`RayDispatcher` starts or joins Ray (a local instance by default; an existing cluster when an
address is given), submits jobs as tasks that declare their CPU/GPU needs, and collects finished
ones as `RunResult`s. `submit` sends one job per task; `submit_batch` sends several in one task
(`worker.run_batch`: a population trainer where the stage has one), and `collect` still yields one
`(job, result)` per job. Failures become statuses here rather than exceptions:

- a worker process that dies mid-task (or a node, or the object holding its result) is retried by
  Ray up to `max_retries` times, then the job is recorded as LOST with Ray's account of the death:
  nothing the loss did, so the engine may run it again as a new attempt. A batch is not failed
  whole for it: its jobs are sent again one task each, so a job that kills its worker every time
  ends LOST alone and the others finish;
- a job still running after `timeout_s` is cancelled with force (its worker process is killed, so
  nothing keeps running) and recorded as TIMEOUT. A batch of n jobs gets n times `timeout_s`:
  the time n single tasks would have had one after another;
- a job that asks for more CPUs or GPUs than the whole cluster has (Ray would queue it for ever)
  is answered at once as ERROR with that reason.

Joining a cluster (`address`), `start` checks first that the address answers and accepts this
client (Ray's token authentication, on by default for `ray start --head` where a token exists),
and raises `RayUnavailableError` with one sentence naming the address and the fix, instead of
Ray's retries and traceback.

It does not decide what to run next or store results (the discovery engine does).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import ray
import torch
from ray.exceptions import (
    LocalRayletDiedError,
    NodeDiedError,
    ObjectLostError,
    OutOfMemoryError,
    RayError,
    RaySystemError,
    TaskCancelledError,
    WorkerCrashedError,
)

from evaluator import cluster
from evaluator.job import EvalJob, group_jobs, job_resources
from evaluator.results import RunResult, RunStatus
from evaluator.secrets import Secret
from evaluator.worker import run_batch, run_job, warm_up

log = logging.getLogger(__name__)

_SLOTS_TTL_S = 5.0  # how long the cluster's CPU count is trusted before it is read again
# Ray's accounts of a task that died with its process, node or result: not the job's doing.
_LOST = (WorkerCrashedError, NodeDiedError, LocalRayletDiedError, ObjectLostError, RaySystemError)


@dataclass(frozen=True)
class DispatchConfig:
    """How jobs are sent to Ray."""

    address: str | None = None  # an existing cluster ("auto", "ray://head:10001"); None: local
    num_cpus: float = 1.0  # CPUs each task declares
    num_gpus: float = 0.0  # GPUs each task declares (hf jobs declare their stage config's)
    max_retries: int = 2  # re-runs of a task whose worker process died; then LOST
    timeout_s: float = 1800.0  # wall clock per job from submission; then killed, TIMEOUT
    local_num_cpus: int | None = None  # CPUs of a local instance; None lets Ray count them
    # The cluster's token (Ray's token authentication) when joining one at `address`; None: Ray's
    # own token where one exists (~/.ray/auth_token, RAY_AUTH_TOKEN), as `ray start` uses.
    auth_token: Secret | None = None


@ray.remote
def _run_job_task(job: EvalJob) -> RunResult:
    # Torch would start one thread per core in every worker; a task gets the CPUs it declared.
    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1.0)
    torch.set_num_threads(max(1, int(cpus)))
    return run_job(job)


@ray.remote
def _run_batch_task(jobs: list[EvalJob]) -> list[RunResult]:
    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1.0)
    torch.set_num_threads(max(1, int(cpus)))
    return run_batch(jobs)


@ray.remote
def _warm_up() -> None:
    # What a worker's first real task would otherwise wait for: importing the stages (torch,
    # transformers) and their first use.
    warm_up()


@dataclass
class _Pending:
    job: EvalJob
    submitted: float


@dataclass
class _PendingBatch:
    jobs: list[EvalJob]
    submitted: float


class RayDispatcher:
    """Submit jobs, collect results. Call `start()` first; `close()` leaves a joined cluster up."""

    def __init__(self, config: DispatchConfig) -> None:
        self.config = config
        self._pending: dict[ray.ObjectRef, _Pending] = {}
        self._batches: dict[ray.ObjectRef, _PendingBatch] = {}
        self._warming: list[ray.ObjectRef] = []  # warm-up tasks, never waited for
        self._slots, self._slots_read_at = 1, float("-inf")
        self._started_here = False

    def start(self) -> None:
        if ray.is_initialized():
            return
        # Quiet: Ray's INFO lines ("Started a local Ray instance") and its workers' output would
        # print into the CLI's live table. Nothing is lost: a task's failure reaches `collect` as
        # an exception from `ray.get`, never through the workers' logs.
        quiet = {"log_to_driver": False, "logging_level": logging.WARNING}
        if self.config.address:
            self.check()
            try:
                ray.init(address=self.config.address, **quiet)
            except (ConnectionError, RuntimeError, RayError) as exc:
                raise cluster.unavailable(self.config.address, exc) from None
        else:
            # Token authentication set up as Ray would (its token, where one exists), but
            # explicitly, which spares the warning Ray prints when it turns it on by itself.
            cluster.prepare_auth(None)
            ray.init(
                num_cpus=self.config.local_num_cpus,
                include_dashboard=False,
                # A local instance talks to itself only: keep it on loopback.
                _node_ip_address="127.0.0.1",
                **quiet,
            )
            self._started_here = True

    def check(self) -> None:
        """Joining a cluster: set up its token and check that it answers and accepts it, in
        milliseconds; RayUnavailableError (one sentence) if not. Nothing to check locally."""
        if self.config.address:
            cluster.prepare_auth(self.config.auth_token)
            cluster.check_joinable(self.config.address)

    def warm_up(self) -> None:
        """Start one worker per CPU now and let each import the evaluator, without waiting:
        the first real jobs then find workers ready."""
        cpus = int(ray.available_resources().get("CPU", 0) // max(self.config.num_cpus, 1e-3))
        self._warming = [
            _warm_up.options(num_cpus=self.config.num_cpus).remote() for _ in range(cpus)
        ]

    def close(self) -> None:
        for ref in [*self._pending, *self._batches]:
            ray.cancel(ref, force=True)
        self._pending.clear()
        self._batches.clear()
        if self._started_here:
            ray.shutdown()
            self._started_here = False

    def slots(self) -> int:
        """How many one-CPU-job tasks the cluster runs at once (re-read every few seconds, as a
        cluster may grow or shrink)."""
        now = time.monotonic()
        if now - self._slots_read_at > _SLOTS_TTL_S:
            cpus = _cluster_total("CPU")
            self._slots = max(1, int(cpus // max(self.config.num_cpus, 1e-3)))
            self._slots_read_at = now
        return self._slots

    @property
    def in_flight(self) -> int:
        """Jobs submitted and not yet collected (a batch counts each of its jobs)."""
        return len(self._pending) + sum(len(b.jobs) for b in self._batches.values())

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

    def submit_batch(self, jobs: list[EvalJob]) -> None:
        """Run `jobs` in one task (`worker.run_batch`); `collect` yields a result for each.

        Jobs of a stage with a population trainer that share task, seed and config (see
        `job.group_jobs`) train as one population; the others run one after another in the
        task. The task declares the CPUs and GPUs of one job; a batch of one is a `submit`.
        """
        if len(jobs) <= 1:
            for job in jobs:
                self.submit(job)
            return
        ref = _run_batch_task.options(
            num_cpus=self.config.num_cpus,
            num_gpus=self.config.num_gpus,
            max_retries=self.config.max_retries,
            retry_exceptions=False,  # run_batch turns candidate failures into statuses itself
        ).remote(list(jobs))
        self._batches[ref] = _PendingBatch(jobs=list(jobs), submitted=time.monotonic())

    def collect(self, timeout_s: float = 0.0) -> list[tuple[EvalJob, RunResult]]:
        """Results of the jobs that finished within `timeout_s` (or timed out), oldest first."""
        refs = [*self._pending, *self._batches]
        if not refs:
            return []
        # Wait for the first result only, then take whatever else is ready: waiting for all of
        # them would hold finished results (and idle workers) until the timeout.
        ready, _ = ray.wait(refs, num_returns=1, timeout=timeout_s, fetch_local=True)
        if ready:
            ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0, fetch_local=True)
        done = []
        for ref in ready:
            if ref in self._pending:
                done.append((self._pending.pop(ref).job, self._result(ref)))
            else:
                done.extend(self._batch_results(ref, self._batches.pop(ref).jobs))
        done.extend(self._expire())
        return done

    def run_all(
        self, jobs: list[EvalJob], poll_s: float = 0.2, *, batched: bool = False
    ) -> list[RunResult]:
        """Submit `jobs` and wait for every result, returned in the order of `jobs`.

        `batched`: send them as `group_jobs` batches (populations) instead of one task each."""
        if batched:
            for batch in group_jobs(jobs):
                self.submit_batch(batch)
        else:
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
        except RayError as exc:
            return self._task_failure(exc)

    def _batch_results(
        self, ref: ray.ObjectRef, jobs: list[EvalJob]
    ) -> list[tuple[EvalJob, RunResult]]:
        try:
            results = ray.get(ref)
        except RayError as exc:
            failure = self._task_failure(exc)
            if failure.status is RunStatus.LOST:
                # One job may be what kills the worker: each goes again alone, so only that
                # one ends LOST and the others finish. Their results come in later collects.
                log.warning(
                    "a batch of %d jobs lost its worker (%s); sending them one task each",
                    len(jobs),
                    failure.reason,
                )
                for job in jobs:
                    self.submit(job)
                return []
            return [(job, failure) for job in jobs]  # the task failed: so did every job in it
        return list(zip(jobs, results, strict=True))

    def _task_failure(self, exc: RayError) -> RunResult:
        """The status of a job whose task Ray could not complete."""
        if isinstance(exc, TaskCancelledError):
            return RunResult(status=RunStatus.TIMEOUT, reason="cancelled")
        if isinstance(exc, OutOfMemoryError):  # Ray's memory monitor killed the worker
            return RunResult(status=RunStatus.OOM, reason=f"ray: {_first_line(exc)}")
        if isinstance(exc, WorkerCrashedError):
            return RunResult(
                status=RunStatus.LOST,
                reason=f"the worker process died {_times(self.config.max_retries + 1)} "
                f"(Ray retried it {self.config.max_retries} times): {_first_line(exc)}",
            )
        if isinstance(exc, _LOST):
            return RunResult(status=RunStatus.LOST, reason=f"ray: {_first_line(exc)}")
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
        out.extend(self._expire_batches(now))
        return out

    def _expire_batches(self, now: float) -> list[tuple[EvalJob, RunResult]]:
        out = []
        for ref, batch in list(self._batches.items()):
            budget = self.config.timeout_s * len(batch.jobs)
            if now - batch.submitted <= budget:
                continue
            del self._batches[ref]
            ray.cancel(ref, force=True)  # kills the worker process: nothing runs on
            log.warning("a batch of %d jobs timed out", len(batch.jobs))
            result = RunResult(
                status=RunStatus.TIMEOUT,
                reason=f"its batch of {len(batch.jobs)} jobs was still running after "
                f"{budget:g} s ({self.config.timeout_s:g} s per job); killed",
                seconds=(now - batch.submitted) / len(batch.jobs),
            )
            out.extend((job, result) for job in batch.jobs)
        return out


def _cluster_total(resource: str) -> float:
    return float(ray.cluster_resources().get(resource, 0.0))


def _times(n: int) -> str:
    return "once" if n == 1 else "twice" if n == 2 else f"{n} times"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__
