"""Evaluations through a real local Ray: results, refused graphs, dead workers, timeouts, and
batches of jobs in one task (a population): a timeout fails every job of a batch, a dead worker
only the job that keeps killing it."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator

import psutil
import pytest
import ray

from evaluator.bandit import BanditConfig, run_bandit
from evaluator.baselines import BASELINES
from evaluator.dispatch import DispatchConfig, RayDispatcher
from evaluator.job import EvalJob
from evaluator.results import RunResult, RunStatus
from evaluator.worker import load_loss
from sandbox import Candidate, Sandbox, SandboxConfig

TASK_TITLE = "ray::_run_job_task"
BATCH_TITLE = "ray::_run_batch_task"


@pytest.fixture(scope="module")
def dpo_graph() -> str:
    with Sandbox(SandboxConfig(pool_size=1)) as sandbox:
        verdict = sandbox.validate(Candidate(name="dpo", thought="", code=BASELINES["dpo"].source))
    assert verdict.accepted, verdict.reason
    return verdict.graph_json


@pytest.fixture(scope="module")
def ray_local() -> Iterator[None]:
    """One local Ray instance for the module (starting one costs seconds)."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, _node_ip_address="127.0.0.1")
    yield
    ray.shutdown()


def _job(graph: str, **config: object) -> EvalJob:
    return EvalJob(
        stage="bandit",
        task="tabular",
        seed=0,
        loss_name="dpo",
        graph_json=graph,
        config=BanditConfig(**config),  # type: ignore[arg-type]
    )


def test_an_evaluation_through_ray_matches_the_same_run_in_process(
    ray_local: None, dpo_graph: str
) -> None:
    dispatcher = RayDispatcher(DispatchConfig())
    dispatcher.start()
    (remote,) = dispatcher.run_all([_job(dpo_graph)])
    local = run_bandit(load_loss("dpo", dpo_graph), task="tabular", seed=0, config=BanditConfig())
    assert remote.status is RunStatus.DONE
    assert remote.metrics == local.metrics  # same seed, same graph, another process: same numbers


def test_a_forged_graph_is_refused_on_the_worker(ray_local: None, dpo_graph: str) -> None:
    forged = json.loads(dpo_graph)
    forged["nodes"][-1]["target"] = "os.system"
    dispatcher = RayDispatcher(DispatchConfig())
    (result,) = dispatcher.run_all([_job(json.dumps(forged))])
    assert result.status is RunStatus.ERROR
    assert "GraphRejected" in result.reason


def _task_pids(title: str = TASK_TITLE) -> set[int]:
    """Worker processes running a task of `title`, of this test's Ray only (the Ray processes
    are this process's descendants; another session's Ray on the machine is left alone)."""
    pids = set()
    for proc in psutil.Process().children(recursive=True):
        try:
            cmdline = proc.cmdline()
        except psutil.Error:
            continue  # gone meanwhile
        if cmdline and cmdline[0].startswith(title):
            pids.add(proc.pid)
    return pids


def _wait_for_task_process(
    exclude: set[int], timeout_s: float = 120.0, title: str = TASK_TITLE
) -> int:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        fresh = _task_pids(title) - exclude
        if fresh:
            return fresh.pop()
        time.sleep(0.1)
    raise AssertionError("no worker picked up the task")


def test_a_worker_killed_mid_task_is_retried_then_recorded_as_failed(
    ray_local: None, dpo_graph: str
) -> None:
    dispatcher = RayDispatcher(DispatchConfig(max_retries=1, timeout_s=600))
    stale = _task_pids()  # workers of an earlier Ray instance may still be exiting
    dispatcher.submit(_job(dpo_graph, max_steps=10_000_000))  # runs until killed
    killed: list[int] = []
    for _ in range(2):  # the first attempt, then Ray's one retry
        pid = _wait_for_task_process(exclude=stale | set(killed))
        os.kill(pid, signal.SIGKILL)
        killed.append(pid)
    results: list = []
    deadline = time.monotonic() + 120
    while not results and time.monotonic() < deadline:
        results = dispatcher.collect(timeout_s=1.0)
    ((_, result),) = results
    assert len(set(killed)) == 2  # the retry ran in a new worker process
    assert result.status is RunStatus.LOST  # not the loss's doing: the engine may run it again
    assert "died" in result.reason and "retried it 1 times" in result.reason


def test_a_job_past_its_deadline_is_killed_and_recorded_as_timeout(
    ray_local: None, dpo_graph: str
) -> None:
    dispatcher = RayDispatcher(DispatchConfig(max_retries=0, timeout_s=3.0))
    stale = _task_pids()
    dispatcher.submit(_job(dpo_graph, max_steps=10_000_000))
    pid = _wait_for_task_process(exclude=stale)
    results: list = []
    deadline = time.monotonic() + 120
    while not results and time.monotonic() < deadline:
        results = dispatcher.collect(timeout_s=0.5)
    ((_, result),) = results
    assert result.status is RunStatus.TIMEOUT
    assert "killed" in result.reason
    # A timeout that kills nothing is no timeout: the worker process must be gone.
    deadline = time.monotonic() + 60
    while psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline, "the timed-out task is still running"
        time.sleep(0.2)


# -- batches -----------------------------------------------------------------------------------


def test_a_batch_runs_as_one_task_and_yields_a_result_per_job(
    ray_local: None, baseline_graphs: dict[str, str]
) -> None:
    forged = json.loads(baseline_graphs["dpo"])
    forged["nodes"][-1]["target"] = "os.system"
    jobs = [
        EvalJob("bandit", "tabular", 0, n, baseline_graphs[n], BanditConfig())
        for n in ("dpo", "ipo", "hinge")
    ]
    jobs.append(EvalJob("bandit", "tabular", 0, "forged", json.dumps(forged), BanditConfig()))
    jobs.append(EvalJob("bandit", "noisy", 1, "dpo", baseline_graphs["dpo"], BanditConfig()))
    dispatcher = RayDispatcher(DispatchConfig())
    dispatcher.submit_batch(jobs)
    assert dispatcher.in_flight == len(jobs)
    collected: list = []
    deadline = time.monotonic() + 300
    while len(collected) < len(jobs) and time.monotonic() < deadline:
        collected.extend(dispatcher.collect(timeout_s=1.0))
    assert dispatcher.in_flight == 0
    by_job = {id(job): result for job, result in collected}
    assert set(by_job) == {id(job) for job in jobs}  # the very job objects that were submitted
    for job in jobs[:3] + jobs[4:]:
        local = run_bandit(
            load_loss(job.loss_name, job.graph_json),
            task=job.task,
            seed=job.seed,
            config=BanditConfig(),
        )
        assert by_job[id(job)].status is RunStatus.DONE
        assert by_job[id(job)].metrics == local.metrics  # another process, same numbers
    assert by_job[id(jobs[3])].status is RunStatus.ERROR
    assert "GraphRejected" in by_job[id(jobs[3])].reason


def test_batched_run_all_matches_one_task_per_job(
    ray_local: None, baseline_graphs: dict[str, str]
) -> None:
    jobs = [
        EvalJob(
            "bandit", "shared_features", seed, n, baseline_graphs[n], BanditConfig(max_steps=60)
        )
        for seed in (0, 1)
        for n in ("dpo", "padll")
    ]
    dispatcher = RayDispatcher(DispatchConfig())
    batched = dispatcher.run_all(jobs, batched=True)
    single = dispatcher.run_all(jobs)
    for a, b in zip(batched, single, strict=True):
        assert a.status is b.status is RunStatus.DONE
        assert a.metrics == pytest.approx(b.metrics, rel=1e-12)


def test_a_batch_whose_worker_dies_is_split_and_only_the_job_that_dies_alone_fails(
    ray_local: None, baseline_graphs: dict[str, str]
) -> None:
    dispatcher = RayDispatcher(DispatchConfig(max_retries=1, timeout_s=600))
    quick = EvalJob(
        "bandit", "tabular", 0, "ipo", baseline_graphs["ipo"], BanditConfig(max_steps=30)
    )
    endless = EvalJob(
        "bandit", "tabular", 0, "dpo", baseline_graphs["dpo"], BanditConfig(max_steps=10**7)
    )
    dispatcher.submit_batch([quick, endless])
    killed: list[int] = []
    for _ in range(2):  # the batch's first attempt, then Ray's one retry
        pid = _wait_for_task_process(exclude=set(killed), title=BATCH_TITLE)
        os.kill(pid, signal.SIGKILL)
        killed.append(pid)
    # The batch is lost; its jobs go again one task each, and the quick one finishes.
    results: dict[int, RunResult] = {}
    deadline = time.monotonic() + 120
    while id(quick) not in results and time.monotonic() < deadline:
        results |= {id(job): r for job, r in dispatcher.collect(timeout_s=1.0)}
    assert results[id(quick)].status is RunStatus.DONE
    assert id(endless) not in results  # it is running on its own now
    while id(endless) not in results and time.monotonic() < deadline:
        for pid in _task_pids() - set(killed):  # the endless job alone keeps losing its worker
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
        results |= {id(job): r for job, r in dispatcher.collect(timeout_s=0.5)}
    lost = results[id(endless)]
    assert lost.status is RunStatus.LOST
    assert "died" in lost.reason and "retried it 1 times" in lost.reason
    assert dispatcher.in_flight == 0


def test_a_batch_past_its_deadline_is_killed_and_every_job_times_out(
    ray_local: None, baseline_graphs: dict[str, str]
) -> None:
    dispatcher = RayDispatcher(DispatchConfig(max_retries=0, timeout_s=1.5))
    jobs = [
        EvalJob("bandit", "tabular", 0, n, baseline_graphs[n], BanditConfig(max_steps=10_000_000))
        for n in ("dpo", "ipo")
    ]
    dispatcher.submit_batch(jobs)
    pid = _wait_for_task_process(exclude=set(), title=BATCH_TITLE)
    results: list = []
    deadline = time.monotonic() + 120
    while len(results) < 2 and time.monotonic() < deadline:
        results.extend(dispatcher.collect(timeout_s=0.5))
    for _, result in results:
        assert result.status is RunStatus.TIMEOUT
        assert "batch of 2 jobs" in result.reason and "killed" in result.reason
    assert len(results) == 2
    deadline = time.monotonic() + 60
    while psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline, "the timed-out batch is still running"
        time.sleep(0.2)
