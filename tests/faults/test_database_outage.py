"""A PostgreSQL server of the test's own: two engines started on one campaign at once (one is
refused), then the server stopped under the running engine: a short outage is ridden out; a long
one stops the engine cleanly (one line, exit 1), and the campaign resumes once the server is
back."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from discovery.archive import CampaignStatus
from tests.faults.conftest import (
    World,
    check_archive,
    evaluating,
    finished_runs,
    race,
    refused_by,
    wait_for,
)

_USER = "postgres"  # initdb refuses to run as root


@dataclass
class PrivateServer:
    data: Path
    port: int

    def _pg_ctl(self, *args: str) -> None:
        subprocess.run(
            ["runuser", "-u", _USER, "--", "pg_ctl", "-D", str(self.data), "-w", *args],
            check=True,
            capture_output=True,
            timeout=60,
        )

    def start(self) -> None:
        options = f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._pg_ctl("-o", options, "-l", str(self.data / "log"), "start")

    def stop(self) -> None:
        self._pg_ctl("-m", "fast", "stop")  # drops every connection, as a restart does

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://{_USER}@127.0.0.1:{self.port}/lossforge"


@pytest.fixture
def private_postgres() -> Iterator[PrivateServer]:
    root = Path(tempfile.mkdtemp(prefix="lossforge-pg-"))
    shutil.chown(root, user=_USER)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    server = PrivateServer(root / "data", port)
    subprocess.run(
        [
            "runuser",
            "-u",
            _USER,
            "--",
            "initdb",
            "-D",
            str(server.data),
            "-A",
            "trust",
            "-U",
            _USER,
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    server.start()
    with psycopg.connect(f"host=127.0.0.1 port={port} user={_USER} dbname=postgres") as db:
        db.autocommit = True
        db.execute("CREATE DATABASE lossforge")
    yield server
    with contextlib.suppress(subprocess.CalledProcessError):
        server.stop()
    shutil.rmtree(root, ignore_errors=True)


def test_postgres_outages_short_and_long(
    make_world: Callable[..., World], private_postgres: PrivateServer
) -> None:
    world = make_world(private_postgres.url)
    archive = world.archive()
    # Two engines at once on PostgreSQL: exactly one runs (its conditional UPDATE took the lease).
    engine, refused = race(world, archive, budget={"candidates": 6})
    assert refused_by(refused, engine)
    wait_for("evaluations in flight", lambda: evaluating(archive, 1))

    # Shorter than the retry window (LOSSFORGE_DB_RETRY_S=3): the engine rides it out.
    private_postgres.stop()
    private_postgres.start()
    wait_for("more finished runs", lambda: len(finished_runs(archive, 1)) >= 4)
    assert engine.poll() is None, world.output(engine)

    # Longer than the window: the engine stops cleanly, with one sentence and no traceback.
    before = finished_runs(archive, 1)
    private_postgres.stop()
    code, _, err = world.finish(engine, timeout=120)
    private_postgres.start()
    assert code != 0
    assert "Traceback" not in err, err[-3000:]
    (line,) = [x for x in err.splitlines() if x.startswith("Error:")]
    assert "did not answer for 3 s" in line and "resume" in line, line
    assert f"127.0.0.1:{private_postgres.port}/lossforge" in line  # names the database
    # Nothing was written after the outage began; the lease lapses: INTERRUPTED, resumable.
    wait_for("INTERRUPTED", lambda: archive.get_campaign(1).status is CampaignStatus.INTERRUPTED)
    check_archive(archive, 1, before=before)

    resumed = world.lossforge("run", "--resume", "1", "--quiet")
    code, _, err = world.finish(resumed)
    assert code == 0, err[-3000:]
    assert archive.get_campaign(1).status is CampaignStatus.FINISHED
    check_archive(archive, 1, before=before)  # none lost, none trained twice
    # Two engines ran (the refused one wrote nothing).
    assert len(archive.list_events(campaign_id=1, kind="started")) == 2
    archive.engine.dispose()
