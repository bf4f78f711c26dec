"""Migrations on both backends: create, round-trip, match the models, run from the CLI; archives
that cannot be opened (a newer schema, a file that is no database, a server that does not answer)
are refused with one sentence naming the URL without its password."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.engine import make_url

from discovery.archive import (
    ArchiveUnreachableError,
    NotADatabaseError,
    UnknownRevisionError,
    create_archive_engine,
    current_revision,
    downgrade,
    head_revision,
    open_archive,
    upgrade,
)
from discovery.archive.models import Base

ROOT = Path(__file__).resolve().parents[2]
TABLES = {"campaigns", "candidates", "evaluations", "llm_calls", "events"}

# Column names outside tools read; they must not drift.
PUBLIC_COLUMNS = {
    "evaluations": {
        "candidate_id",
        "stage",
        "task",
        "seed",
        "status",
        "score",
        "metrics",
        "attempt",
    },
    "candidates": {
        "campaign_id",
        "name",
        "source",
        "fingerprint",
        "status",
        "reason",
        "origin",
        "parent_ids",
    },
    "campaigns": {"name", "status", "spec"},
}


def _tables(url: str) -> set[str]:
    engine = create_archive_engine(url)
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def test_upgrade_creates_the_public_schema(database_url: str) -> None:
    engine = create_archive_engine(database_url)
    assert current_revision(engine) is None
    upgrade(engine)
    assert current_revision(engine) == head_revision()
    inspector = inspect(engine)
    assert set(inspector.get_table_names()) - {"alembic_version"} == TABLES
    for table, columns in PUBLIC_COLUMNS.items():
        assert columns <= {c["name"] for c in inspector.get_columns(table)}, table
    engine.dispose()


def test_downgrade_base_then_upgrade_round_trips(database_url: str) -> None:
    archive = open_archive(database_url)
    archive.create_campaign(name="before", spec={}, seed=0)
    downgrade(archive.engine, "base")
    assert current_revision(archive.engine) is None
    assert _tables(database_url) == set()
    upgrade(archive.engine)
    assert _tables(database_url) == TABLES
    assert archive.list_campaigns() == []  # a fresh schema, usable again
    archive.create_campaign(name="after", spec={}, seed=0)
    archive.engine.dispose()


def test_models_and_migrations_agree(database_url: str) -> None:
    engine = create_archive_engine(database_url)
    upgrade(engine)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []
    engine.dispose()


def test_opening_a_current_archive_is_a_no_op(database_url: str) -> None:
    first = open_archive(database_url)
    campaign = first.create_campaign(name="kept", spec={"a": 1}, seed=1)
    second = open_archive(database_url)
    assert second.get_campaign(campaign.id).spec == {"a": 1}
    first.engine.dispose()
    second.engine.dispose()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_alembic_command_round_trips(backend: str, new_database_url: Callable[[str], str]) -> None:
    """`alembic downgrade base` then `alembic upgrade head`, as a user runs them at the root."""
    url = new_database_url(backend)
    env = {**os.environ, "LOSSFORGE_DATABASE_URL": url}
    alembic = [sys.executable, "-m", "alembic"]
    for args in (["upgrade", "head"], ["downgrade", "base"], ["upgrade", "head"]):
        result = subprocess.run(
            [*alembic, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, result.stderr
        expected = TABLES if args[0] == "upgrade" else set()
        assert _tables(url) == expected


def test_sqlite_runs_in_wal_mode_with_a_busy_timeout(
    new_database_url: Callable[[str], str],
) -> None:
    engine = create_archive_engine(new_database_url("sqlite"))
    with engine.connect() as connection:
        assert connection.scalar(text("PRAGMA journal_mode")) == "wal"
        assert connection.scalar(text("PRAGMA busy_timeout")) >= 10_000
        assert connection.scalar(text("PRAGMA foreign_keys")) == 1
    engine.dispose()


def set_revision(url: str, revision: str) -> None:
    """Stamp the archive as if another lossforge had migrated it to `revision`."""
    engine = create_archive_engine(url)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = :r"), {"r": revision})
    engine.dispose()


def test_an_archive_from_a_newer_lossforge_is_refused_and_left_alone(database_url: str) -> None:
    open_archive(database_url).engine.dispose()
    set_revision(database_url, "9999_from_the_future")
    engine = create_archive_engine(database_url)
    for attempt in (lambda: open_archive(database_url), lambda: downgrade(engine, "base")):
        with pytest.raises(UnknownRevisionError) as error:
            attempt()
        message = str(error.value)
        assert "is at schema revision 9999_from_the_future" in message
        assert "a newer lossforge wrote it; upgrade lossforge" in message
        assert make_url(database_url).render_as_string(hide_password=True) in message
    assert current_revision(engine) == "9999_from_the_future"
    assert _tables(database_url) == TABLES  # nothing dropped or changed
    engine.dispose()


def test_a_file_that_is_not_a_database_is_refused_and_left_alone(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("not a database, just notes\n" * 100)
    before = notes.read_bytes()
    with pytest.raises(NotADatabaseError) as error:
        open_archive(f"sqlite:///{notes}")
    assert str(error.value).startswith(f"{notes} is not an SQLite database (file is not a")
    assert "point LOSSFORGE_DATABASE_URL at a lossforge archive" in str(error.value)
    assert notes.read_bytes() == before


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        (f"postgresql://lf:hunter2-pw@127.0.0.1:{_closed_port()}/x", "Connection refused"),
        ("postgresql://lf:hunter2-pw@no-such-host.invalid/x", "no-such-host.invalid"),
        ("sqlite:////nonexistent-dir-of-lossforge/a.db", "unable to open database file"),
        ("mysql://lf:hunter2-pw@127.0.0.1/x", "it has no driver for 'mysql'"),
    ],
    ids=["closed-port", "unknown-host", "no-such-directory", "no-driver"],
)
def test_unreachable_databases_are_named_without_their_password(url: str, reason: str) -> None:
    with pytest.raises(ArchiveUnreachableError) as error:
        open_archive(url)
    message = str(error.value)
    assert reason in message
    assert "hunter2-pw" not in message
    assert make_url(url).host is None or f"{make_url(url).host}" in message
    assert "LOSSFORGE_DATABASE_URL" in message and "\n" not in message


def test_postgresql_without_its_driver_says_which_extra_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)  # as if `lossforge[postgres]` was not
    with pytest.raises(ArchiveUnreachableError) as error:
        open_archive("postgresql://lf:hunter2-pw@127.0.0.1/x")
    message = str(error.value)
    assert "pip install 'lossforge[postgres]'" in message and "hunter2-pw" not in message
