"""The engine through its ports alone: evaluations that run in this process (a `Backend` that
calls the worker's own `run_batch`, behind the real job queue), no Ray. What the engine needs of
the evaluator is the `Evaluations` protocol; this test is the proof that it needs nothing more."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from discovery.archive import Archive, CampaignStatus, CandidateStatus, EvaluationStatus
from discovery.engine import Engine, JobContext
from discovery.runner import build_proposer, create_campaign
from evaluator.job import EvalJob
from evaluator.ports import Evaluations
from evaluator.queue import JobQueue
from evaluator.results import RunResult
from evaluator.worker import run_batch
from sandbox import Sandbox
from tests.discovery.conftest import small_spec


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
    status = Engine(
        campaign_id=campaign_id,
        spec=spec,
        archive=store,
        sandbox=sandbox,
        evaluations=evaluations,
        proposer=build_proposer(spec.proposer, rng),
        rng=rng,
        job_context=JobContext(cache_dir=str(tmp_path / "cache")),
    ).run()

    assert status is CampaignStatus.FINISHED
    rows = store.list_evaluations(campaign_id=campaign_id)
    assert rows and all(r.status is EvaluationStatus.DONE for r in rows)
    assert sum(backend.batches) == len(rows)  # every evaluation ran once, through the port
    assert max(backend.batches) > 1  # and the queue formed populations on the way
    assert backend.closed  # the engine's stop closes what it was given
    proposed = store.list_candidates(campaign_id=campaign_id)
    assert any(c.origin != "baseline" and c.status is CandidateStatus.EVALUATED for c in proposed)
