"""The disk holding a SQLite archive fills up under a running engine: it stops with one line, the
archive stays whole, and the campaign resumes once space is freed. The disk is a tiny tmpfs the
test mounts (the suite runs as root)."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from discovery.archive import CampaignStatus
from tests.faults.conftest import World, check_archive, evaluating, finished_runs, wait_for


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount)], check=True)
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(path: Path) -> None:
    """Write zeros to `path` until the file system is full."""
    with contextlib.suppress(OSError), path.open("wb", buffering=0) as f:
        for chunk in (1 << 20, 1 << 12, 1):
            with contextlib.suppress(OSError):
                while True:
                    f.write(b"\0" * chunk)
    assert os.statvfs(path).f_bavail == 0


def test_disk_full_stops_cleanly_and_resumes(
    make_world: Callable[..., World], tiny_disk: Path
) -> None:
    db = tiny_disk / "archive.db"
    world = make_world(f"sqlite:///{db}")
    archive = world.archive()
    engine = world.lossforge("run", world.spec_file(budget={"candidates": 6}), "--quiet")
    wait_for("evaluations in flight", lambda: evaluating(archive, 1))

    _fill(tiny_disk / "filler")
    code, _, err = world.finish(engine, timeout=120)
    assert code != 0
    assert "Traceback" not in err, err[-3000:]
    (line,) = [x for x in err.splitlines() if x.startswith("Error:")]
    assert "is full" in line and "free some space" in line, line

    (tiny_disk / "filler").unlink()
    with contextlib.closing(sqlite3.connect(db)) as raw:
        assert raw.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    before = finished_runs(archive, 1)
    check_archive(archive, 1, before=before)
    wait_for("INTERRUPTED", lambda: archive.get_campaign(1).status is CampaignStatus.INTERRUPTED)

    resumed = world.lossforge("run", "--resume", "1", "--quiet")
    code, _, err = world.finish(resumed)
    assert code == 0, err[-3000:]
    assert archive.get_campaign(1).status is CampaignStatus.FINISHED
    check_archive(archive, 1, before=before)
    archive.engine.dispose()
