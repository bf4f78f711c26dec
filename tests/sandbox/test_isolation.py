"""isolation.py: the worker pool, observed directly with raw jobs."""

from __future__ import annotations

import json
import threading

from sandbox import protocol
from sandbox.config import GraphLimits
from sandbox.isolation import Outcome, WorkerPool
from tests.sandbox.sources import DPO, loss_source


def _job(source: str) -> bytes:
    return protocol.encode_job(source, GraphLimits())


def test_pool_reports_its_hardening_and_cold_start(pool: WorkerPool) -> None:
    assert pool.alive
    # None where the step works (all three here, as root); otherwise why not (and a warning).
    assert set(pool.features) == {"seccomp", "network_namespace", "drop_privileges"}
    assert all(why is None or (isinstance(why, str) and why) for why in pool.features.values())
    assert pool.cold_start_s is not None and pool.cold_start_s > 0


def test_an_honest_job_finishes_with_a_result(pool: WorkerPool) -> None:
    outcome = pool.run(_job(DPO), timeout_s=60)
    assert outcome.outcome is Outcome.FINISHED
    assert (outcome.exit_code, outcome.exit_signal) == (0, None)
    assert json.loads(outcome.result)["ok"] is True


def test_timeout_kills_the_worker(pool: WorkerPool) -> None:
    outcome = pool.run(_job(loss_source("while True:", "    pass")), timeout_s=2)
    assert outcome.outcome is Outcome.TIMEOUT
    assert outcome.exit_signal == 9  # SIGKILL to the whole process group


def test_output_is_cut_off_at_the_budget(pool: WorkerPool) -> None:
    outcome = pool.run(_job(loss_source("while True:", "    print('x' * 4096)")), timeout_s=60)
    assert outcome.outcome is Outcome.OUTPUT_FLOOD
    assert 0 < len(outcome.output_tail) <= 2048


def test_output_within_budget_is_kept_as_a_tail(pool: WorkerPool) -> None:
    source = "print('hello from the candidate')\n" + DPO
    outcome = pool.run(_job(source), timeout_s=60)
    assert outcome.outcome is Outcome.FINISHED
    assert b"hello from the candidate" in outcome.output_tail


def test_a_worker_that_exits_early_reports_no_result(pool: WorkerPool) -> None:
    outcome = pool.run(_job("import os\nos._exit(3)\n"), timeout_s=60)
    assert outcome.outcome is Outcome.FINISHED
    assert outcome.result == b"" and outcome.exit_code == 3


def test_parallel_runs(pool: WorkerPool) -> None:
    results: list[bool] = []

    def run() -> None:
        outcome = pool.run(_job(DPO), timeout_s=60)
        results.append(json.loads(outcome.result)["ok"])

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [True] * 4
