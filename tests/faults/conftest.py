"""Fault injection against real engine processes: what each scenario shares.

Every scenario runs `lossforge run` or `lossforge serve` as a subprocess on a tiny campaign (one
bandit task, evolve proposer, seconds of training), breaks something (SIGKILL, a second engine, a
stopped PostgreSQL, a full disk, SIGTERM), and then checks the archive: no finished evaluation
lost, none run twice, every candidate ends with a terminal status or is resumable, and the
campaign's status and reason say what happened. Engines join one local Ray started here for the
module (starting Ray per engine would cost more than the scenarios). Leases are short
(`LOSSFORGE_LEASE_TTL_S=2`), so an engine that died shows INTERRUPTED within seconds.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest
import ray

from discovery.archive import (
    Archive,
    CampaignStatus,
    CandidateStatus,
    EvaluationRecord,
    EvaluationStatus,
    open_archive,
)
from discovery.runner import create_campaign
from discovery.spec import parse_spec

LOSSFORGE = str(Path(sys.executable).parent / "lossforge")
TTL_S = 2.0

SPEC = {
    "name": "faults",
    "seed": 3,
    "proposer": {"kind": "evolve", "batch_size": 2},
    "stages": [{"name": "bandit", "tasks": ["tabular"], "seeds": 2, "config": {"max_steps": 150}}],
    "budget": {"candidates": 4},
    "baselines": ["dpo"],
    "max_in_flight": 2,
}

# Where a campaign may stop with work left: what a resume picks up again.
_RESUMABLE_CANDIDATES = {CandidateStatus.PROPOSED, CandidateStatus.ACCEPTED}
_TERMINAL_CANDIDATES = {
    CandidateStatus.REJECTED,
    CandidateStatus.DUPLICATE,
    CandidateStatus.EVALUATED,
    CandidateStatus.FAILED,
}
_OPEN = {EvaluationStatus.PENDING, EvaluationStatus.RUNNING}


@pytest.fixture(scope="package")
def ray_address() -> Iterator[str]:
    """One local Ray for the suite; every engine process joins it."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, _node_ip_address="127.0.0.1")
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@dataclass
class World:
    """One archive and the environment of the lossforge processes that share it."""

    database_url: str
    tmp: Path
    ray_address: str
    extra_env: dict[str, str] = field(default_factory=dict)
    procs: list[subprocess.Popen[str]] = field(default_factory=list)
    files: dict[int, tuple[Path, Path]] = field(default_factory=dict)
    engine_pids: set[int] = field(default_factory=set)  # engines a server started

    def adopt(self, pid: int) -> None:
        """Kill this engine process (a server's child) when the test ends."""
        self.engine_pids.add(pid)

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "LOSSFORGE_DATABASE_URL": self.database_url,
            "LOSSFORGE_CACHE_DIR": str(self.tmp / "cache"),
            "LOSSFORGE_DATA_DIR": str(self.tmp / "data"),
            "LOSSFORGE_RAY_ADDRESS": self.ray_address,
            "LOSSFORGE_LEASE_TTL_S": str(TTL_S),
            "LOSSFORGE_LEASE_HEARTBEAT_S": "0.4",
            "LOSSFORGE_DB_RETRY_S": "3",
            "LOSSFORGE_SHUTDOWN_GRACE_S": "2",
            **self.extra_env,
        }

    def lossforge(self, *args: str, name: str = "run") -> subprocess.Popen[str]:
        """`lossforge ARGS` in its own process group, output to files (read with `output`)."""
        n = len(self.procs)
        out = (self.tmp / f"{name}-{n}.out").open("w")
        err = (self.tmp / f"{name}-{n}.err").open("w")
        proc = subprocess.Popen(
            [LOSSFORGE, *args],
            cwd=self.tmp,
            env=self.env(),
            stdout=out,
            stderr=err,
            text=True,
            start_new_session=True,
        )
        self.procs.append(proc)
        self.files[proc.pid] = (Path(out.name), Path(err.name))
        return proc

    def output(self, proc: subprocess.Popen[str]) -> tuple[str, str]:
        """(stdout, stderr) of a process so far."""
        out, err = self.files[proc.pid]
        return out.read_text(), err.read_text()

    def finish(self, proc: subprocess.Popen[str], timeout: float = 300) -> tuple[int, str, str]:
        code = proc.wait(timeout=timeout)
        return (code, *self.output(proc))

    def archive(self) -> Archive:
        return open_archive(self.database_url, lease_ttl_s=TTL_S)

    def spec_file(self, **changes: object) -> str:
        path = self.tmp / "spec.json"
        path.write_text(json.dumps({**SPEC, **changes}))
        return str(path)


@pytest.fixture
def make_world(ray_address: str, tmp_path: Path) -> Iterator[Callable[[str], World]]:
    worlds: list[World] = []

    def make(database_url: str, **extra_env: str) -> World:
        world = World(database_url, tmp_path, ray_address, dict(extra_env))
        worlds.append(world)
        return world

    yield make
    for world in worlds:  # nothing outlives its test
        for proc in world.procs:
            kill_group(proc)
        for pid in world.engine_pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)


def kill_group(proc: subprocess.Popen[str]) -> None:
    """SIGKILL a process started with its own session and everything in that session."""
    family = [proc.pid]
    with contextlib.suppress(psutil.NoSuchProcess):
        family += [p.pid for p in psutil.Process(proc.pid).children(recursive=True)]
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    for pid in family:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=30)


def wait_for(what: str, check: Callable[[], object], timeout: float = 180) -> object:
    """Poll `check` until it returns something truthy; fail naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = check()
        except Exception:  # the schema or the campaign may not be there yet
            value = None
        if value:
            return value
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}")


def evaluating(archive: Archive, campaign_id: int, done: int = 2) -> bool:
    """In the middle of evaluating: some runs finished, some still open."""
    rows = archive.list_evaluations(campaign_id=campaign_id)
    return (
        sum(e.status is EvaluationStatus.DONE for e in rows) >= done
        and sum(e.status in _OPEN for e in rows) >= 1
    )


def finished_runs(archive: Archive, campaign_id: int) -> dict[int, EvaluationRecord]:
    return {
        e.id: e
        for e in archive.list_evaluations(campaign_id=campaign_id, status=EvaluationStatus.DONE)
    }


def check_archive(
    archive: Archive, campaign_id: int, *, before: dict[int, EvaluationRecord] | None = None
) -> None:
    """What every scenario must leave: nothing lost, nothing twice, nothing stranded."""
    rows = archive.list_evaluations(campaign_id=campaign_id)
    done = Counter((e.candidate_id, e.stage, e.task, e.seed) for e in rows if e.status == "DONE")
    assert done, "no evaluation finished"
    assert max(done.values()) == 1, [key for key, n in done.items() if n > 1]  # none twice
    now = {e.id: e for e in rows}
    for evaluation_id, old in (before or {}).items():  # no finished evaluation lost or changed
        assert now[evaluation_id].status is EvaluationStatus.DONE
        assert now[evaluation_id].metrics == old.metrics
    campaign = archive.get_campaign(campaign_id)
    candidates = archive.list_candidates(campaign_id=campaign_id)
    if campaign.status is CampaignStatus.FINISHED:
        assert not [e for e in rows if e.status in _OPEN]
        assert {c.status for c in candidates} <= _TERMINAL_CANDIDATES, candidates
    else:
        assert {c.status for c in candidates} <= _TERMINAL_CANDIDATES | _RESUMABLE_CANDIDATES


def race(world: World, archive: Archive, **spec: object) -> tuple[subprocess.Popen[str], str]:
    """Two `lossforge run --resume ID` at once: (the one that runs, the other's error output)."""
    campaign_id = create_campaign(archive, parse_spec({**SPEC, **spec}))
    engines = [world.lossforge("run", "--resume", str(campaign_id), "--quiet") for _ in range(2)]
    refused = wait_for("one engine to be refused", lambda: [e for e in engines if e.poll()])
    (loser,) = refused  # type: ignore[misc]
    (winner,) = [e for e in engines if e is not loser]
    assert loser.returncode != 0
    _, err = world.output(loser)
    assert "Traceback" not in err, err[-3000:]
    return winner, err


def refused_by(err: str, winner: subprocess.Popen[str]) -> bool:
    return "already run by another engine" in err and f"pid {winner.pid}," in err
