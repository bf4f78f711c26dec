"""Ray workers killed mid-campaign: nothing is lost silently, nothing runs twice.

A tiny bandit campaign runs in process on the module's local Ray while a thread SIGKILLs every
task worker process it sees, until DPO's first run has been lost on every try the engine gives
it. Then the workers are left alone. The campaign must not end FINISHED with candidates unranked:
it stops PAUSED saying how many could not be scored and why (DPO's run, named), each such
candidate UNSCORED with that reason; the resume runs what is missing and finishes with every
candidate scored. At no point does a (candidate, stage, task, seed) have two DONE rows.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import psutil
import pytest

from discovery.archive import (
    Archive,
    CampaignStatus,
    CandidateStatus,
    EvaluationStatus,
    open_archive,
)
from discovery.engine import Engine
from discovery.retries import Retries
from discovery.runner import build_proposer, create_campaign
from discovery.spec import CampaignSpec
from evaluator.dispatch import DispatchConfig, RayDispatcher
from evaluator.queue import JobQueue
from sandbox import Sandbox
from tests.discovery.conftest import small_spec

TASK_TITLES = ("ray::_run_batch_task", "ray::_run_job_task")
ATTEMPTS = 2  # the engine's tries per run in this test (the default is 3)


def _task_workers() -> set[int]:
    """Pids of this process's Ray workers running a task (another session's Ray is not ours)."""
    pids = set()
    for proc in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            cmdline = proc.cmdline()
            if cmdline and cmdline[0].startswith(TASK_TITLES):
                pids.add(proc.pid)
    return pids


class Killer(threading.Thread):
    """SIGKILLs task workers until DPO's bandit run of seed 0 has `ATTEMPTS` LOST attempts."""

    def __init__(self, url: str, campaign_id: int) -> None:
        super().__init__(daemon=True)
        self.url, self.campaign_id = url, campaign_id
        self.kills = 0
        self.done = threading.Event()

    def _dpo_lost(self, archive: Archive) -> int:
        dpo = next(
            c for c in archive.list_candidates(campaign_id=self.campaign_id) if c.name == "dpo"
        )
        return sum(
            e.status is EvaluationStatus.LOST and e.seed == 0
            for e in archive.list_evaluations(candidate_id=dpo.id)
        )

    def run(self) -> None:
        archive = open_archive(self.url)
        try:
            while not self.done.wait(0.05):  # a run lasts longer: none slips through
                for pid in _task_workers():
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                        self.kills += 1
                with contextlib.suppress(StopIteration):
                    if self._dpo_lost(archive) >= ATTEMPTS:
                        self.done.set()
        finally:
            archive.engine.dispose()


@pytest.fixture
def spec() -> CampaignSpec:
    # One job per task (no populations): each kill costs one run one try.
    stage = {"name": "bandit", "tasks": ["tabular"], "seeds": 1}
    return small_spec(
        name="worker-faults",
        proposer={"kind": "evolve", "batch_size": 2},
        stages=[{**stage, "config": {"max_steps": 60, "population_size": 1}}],
        budget={"candidates": 2},
        baselines=["dpo", "hinge"],
    )


@pytest.fixture
def engine_for(
    ray_local: None, sandbox: Sandbox, store: Archive, tmp_path: Path
) -> Callable[[CampaignSpec, int], Engine]:
    """engine_for(spec, campaign_id) -> an Engine whose dispatcher lets Ray retry nothing (a
    killed worker is LOST at once) and that tries each run `ATTEMPTS` times."""

    def build(spec: CampaignSpec, campaign_id: int) -> Engine:
        rng = np.random.default_rng(spec.seed)
        engine = Engine(
            campaign_id=campaign_id,
            spec=spec,
            archive=store,
            sandbox=sandbox,
            evaluations=JobQueue(RayDispatcher(DispatchConfig(max_retries=0, timeout_s=300))),
            proposer=build_proposer(spec.proposer, rng),
            rng=rng,
        )
        engine.retries = Retries(max_attempts=ATTEMPTS)
        return engine

    return build


def _no_run_done_twice(store: Archive, campaign_id: int) -> None:
    done = Counter(
        (e.candidate_id, e.stage, e.task, e.seed)
        for e in store.list_evaluations(campaign_id=campaign_id)
        if e.status is EvaluationStatus.DONE
    )
    assert done and max(done.values()) == 1


def test_killed_workers_leave_candidates_unscored_with_a_reason_then_resume_scores_them(
    spec: CampaignSpec, store: Archive, engine_for: Callable[[CampaignSpec, int], Engine]
) -> None:
    campaign_id = create_campaign(store, spec)
    killer = Killer(store.engine.url.render_as_string(hide_password=False), campaign_id)
    killer.start()
    try:
        status = engine_for(spec, campaign_id).run()
    finally:
        killer.done.set()
        killer.join(timeout=30)
    assert killer.kills >= ATTEMPTS

    # DPO's seed-0 run was lost on every try: the campaign says so, and stops resumable.
    campaign = store.get_campaign(campaign_id)
    assert status is CampaignStatus.PAUSED, campaign.reason
    dpo_failed = "DPO's bandit run on task tabular seed 0 failed twice"  # ATTEMPTS tries
    assert "could not be fully scored" in campaign.reason and dpo_failed in campaign.reason
    assert f"lossforge run --resume {campaign_id}" in campaign.reason
    proposed = [
        c
        for c in store.list_candidates(campaign_id=campaign_id)
        if c.name != "dpo" and c.status not in (CandidateStatus.REJECTED, CandidateStatus.DUPLICATE)
    ]
    assert proposed
    for c in proposed:  # none silently unranked: each has a score or a status saying why not
        assert c.status in (CandidateStatus.UNSCORED, CandidateStatus.FAILED), (c.name, c.status)
        assert c.reason, c.name
    assert any(dpo_failed in (c.reason or "") for c in proposed)
    # Followers of the event stream saw the retries and what was left unscored.
    assert store.list_events(campaign_id=campaign_id, kind="retry")
    assert store.list_events(campaign_id=campaign_id, kind="unscored")
    _no_run_done_twice(store, campaign_id)

    # The workers are left alone now: the resume runs DPO's run again, and every score comes in.
    status = engine_for(spec, campaign_id).run()
    campaign = store.get_campaign(campaign_id)
    assert status is CampaignStatus.FINISHED, campaign.reason
    after = {c.id: c for c in store.list_candidates(campaign_id=campaign_id)}
    for before in proposed:  # scored now, or failed by its own loss (a NaN), with the reason
        c = after[before.id]
        assert c.status in (CandidateStatus.EVALUATED, CandidateStatus.FAILED), (c.name, c.status)
        assert c.status is CandidateStatus.EVALUATED or "DPO" not in (c.reason or "")
    assert any(after[c.id].status is CandidateStatus.EVALUATED for c in proposed)
    dpo = next(c for c in after.values() if c.name == "dpo")
    seed0 = sorted(
        (e for e in store.list_evaluations(candidate_id=dpo.id) if e.seed == 0),
        key=lambda e: e.attempt,
    )
    assert [e.status for e in seed0[:ATTEMPTS]] == [EvaluationStatus.LOST] * ATTEMPTS
    assert seed0[-1].status is EvaluationStatus.DONE and seed0[-1].attempt >= ATTEMPTS
    _no_run_done_twice(store, campaign_id)
