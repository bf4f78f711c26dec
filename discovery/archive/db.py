"""Engines for the archive: URL normalisation and the SQLite settings that make it safe to share.

SQLite is the embedded default, so several processes (the campaign engine, the API, a CLI reading
the leaderboard) open one file at once. That takes WAL mode (readers never block the writer), a busy
timeout (a writer waits for the lock instead of failing at once) and write transactions that take
the lock when they begin (`BEGIN IMMEDIATE`), because a deferred transaction that reads and then
writes can fail with SQLITE_BUSY without waiting at all. PostgreSQL needs none of this.

This module does not create tables (see `migrate`) and holds no sessions (see `store`).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

DEFAULT_DATABASE_URL = "sqlite:///./lossforge.db"

# Execution option that asks for a write transaction (BEGIN IMMEDIATE on SQLite).
WRITE_OPTION = "lossforge_write"

_SQLITE_BUSY_TIMEOUT_MS = 30_000


def normalize_url(url: str) -> str:
    """Map the URL spellings users paste to the drivers lossforge ships.

    `postgres://` and `postgresql://` would make SQLAlchemy look for psycopg2; lossforge depends on
    psycopg 3, so both become `postgresql+psycopg://`.
    """
    parsed = make_url(url)
    if parsed.drivername in ("postgres", "postgresql"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def create_archive_engine(url: str, *, echo: bool = False) -> Engine:
    """Build an engine for `url` with the settings the archive relies on."""
    url = normalize_url(url)
    if make_url(url).get_backend_name() != "sqlite":
        return create_engine(url, echo=echo, pool_pre_ping=True)
    engine = create_engine(url, echo=echo, connect_args={"check_same_thread": False})
    _configure_sqlite(engine)
    return engine


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from the sqlite3 module so that `_on_begin` decides how
        # each transaction starts.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={_SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        # With WAL, NORMAL loses no committed data on a process crash (only on power loss).
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        if connection.get_execution_options().get(WRITE_OPTION):
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            connection.exec_driver_sql("BEGIN")
