"""Migrations on both backends: create, round-trip, match the models, run from the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from discovery.archive import (
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
