"""The engine through its ports alone: evaluations that run in this process (a `Backend` that
calls the worker's own `run_batch`, behind the real job queue), no Ray. What the engine needs of
the evaluator is the `Evaluations` protocol; this test is the proof that it needs nothing more.
The same campaign holds a lease, so it also shows the engine's start-up phases (events) and its
live state (written with the lease heartbeat, cleared with the lease)."""

from __future__ import annotations

import threading
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from discovery import lease
from discovery.archive import Archive, CampaignStatus, CandidateStatus, EvaluationStatus
from discovery.engine import Engine, JobContext
from discovery.progress import Progress
from discovery.runner import build_proposer, create_campaign
from evaluator.job import EvalJob
from evaluator.ports import Evaluations
from evaluator.queue import JobQueue
from evaluator.results import RunResult
from evaluator.worker import run_batch
from sandbox import Sandbox
from tests.discovery.conftest import small_spec
from tests.evaluator.test_queue import job, queue


class InProcessBackend:
    """Runs each batch as it is sent, in this process; `collect` hands the results back."""

    def __init__(self) -> None:
        self.batches: list[int] = []  # size of each batch sent
        self.done: list[tuple[EvalJob, RunResult]] = []
        self.closed = False

    def submit(self, job: EvalJob) -> None:
        self.submit_batch([job])

    def submit_batch(self, jobs: list[EvalJob]) -> None:
        self.batches.append(len(jobs))
        self.done += zip(jobs, run_batch(jobs), strict=True)

    def collect(self, timeout_s: float = 0.0) -> list[tuple[EvalJob, RunResult]]:
        done, self.done = self.done, []
        return done

    def slots(self) -> int:
        return 2

    def close(self) -> None:
        self.closed = True


def test_a_campaign_runs_on_in_process_evaluations(
    sandbox: Sandbox, store: Archive, tmp_path: Path
) -> None:
    spec = small_spec()
    campaign_id = create_campaign(store, spec)
    rng = np.random.default_rng(spec.seed)
    backend = InProcessBackend()
    evaluations: Evaluations = JobQueue(backend)
    keeper = lease.take(store, campaign_id, lease.LeaseConfig(ttl_s=5.0, heartbeat_s=0.1))
    keeper.start()
    seen: list[dict[str, Any]] = []  # the campaign's `live` as readers saw it during the run
    beat = threading.Event()

    def watch(progress: Progress) -> None:
        live = store.get_campaign(campaign_id).live
        if live is None and not beat.is_set():  # wait once for a heartbeat to write it
            for _ in range(100):
                if (live := store.get_campaign(campaign_id).live) is not None:
                    break
                beat.wait(0.1)
        if live is not None:
            beat.set()
            seen.append(live)

    status = Engine(
        campaign_id=campaign_id,
        spec=spec,
        archive=store,
        sandbox=sandbox,
        evaluations=evaluations,
        proposer=build_proposer(spec.proposer, rng),
        rng=rng,
        job_context=JobContext(cache_dir=str(tmp_path / "cache")),
        observer=watch,
        lease=keeper,
    ).run()
    keeper.stop()

    assert status is CampaignStatus.FINISHED
    rows = store.list_evaluations(campaign_id=campaign_id)
    assert rows and all(r.status is EvaluationStatus.DONE for r in rows)
    assert sum(backend.batches) == len(rows)  # every evaluation ran once, through the port
    assert max(backend.batches) > 1  # and the queue formed populations on the way
    assert backend.closed  # the engine's stop closes what it was given
    proposed = store.list_candidates(campaign_id=campaign_id)
    assert any(c.origin != "baseline" and c.status is CandidateStatus.EVALUATED for c in proposed)

    # Start-up phases, in order, each with its sentence; then the stop's.
    phases = [e.payload for e in store.list_events(campaign_id=campaign_id, kind="phase")]
    assert [p["phase"] for p in phases] == [
        "baselines",
        "reference",
        "proposing",
        "finishing",
        "stopping",
    ]
    assert "dpo, hinge" in phases[0]["detail"] and all(p["detail"] for p in phases)
    assert phases[-1]["detail"].startswith("finished: candidate budget reached")
    # Live state came with the heartbeat while it ran, and went with the lease at the stop.
    assert seen, "no heartbeat wrote the campaign's live state during the run"
    for live in seen:
        assert set(live) == {"phase", "queue_depth", "in_flight", "updated_at"}
        assert live["phase"] in {"baselines", "reference", "proposing", "finishing"}
        assert live["queue_depth"] >= 0 and live["in_flight"] >= 0
        assert datetime.fromisoformat(live["updated_at"]).tzinfo is not None
    assert store.get_campaign(campaign_id).live is None


def test_the_port_tells_jobs_waiting_from_jobs_in_flight() -> None:
    jobs, backend = queue(slots=1)
    evaluations: Evaluations = jobs
    evaluations.submit(job("a", seed=0), 1, stage_index=0, dpo=False)
    evaluations.submit(job("b", seed=1), 2, stage_index=0, dpo=False)  # another batch
    assert (len(evaluations.pending()), evaluations.in_flight()) == (2, 0)  # both wait
    assert evaluations.collect() == []  # sends "a" into the one slot
    assert evaluations.in_flight() == 1
    backend.finish("a")
    assert [key for key, _ in evaluations.collect()] == [1]
    assert (len(evaluations.pending()), evaluations.in_flight()) == (1, 0)  # "b" waits its turn
    evaluations.collect()
    assert evaluations.in_flight() == 1
