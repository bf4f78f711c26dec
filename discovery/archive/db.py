"""Engines for the archive: URL normalisation and the SQLite settings that make it safe to share.

SQLite is the embedded default, so several processes (the campaign engine, the API, a CLI reading
the leaderboard) open one file at once. That takes WAL mode (readers never block the writer), a busy
timeout (a writer waits for the lock instead of failing at once) and write transactions that take
the lock when they begin (`BEGIN IMMEDIATE`), because a deferred transaction that reads and then
writes can fail with SQLITE_BUSY without waiting at all. PostgreSQL needs none of this.

The first contact with a database is where a wrong URL shows: `opening` turns the driver's
refusal into ArchiveUnreachableError or NotADatabaseError, one sentence that names the URL (with
its password masked) and what to do.

This module does not create tables (see `migrate`) and holds no sessions (see `session`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import URL, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import (
    ArgumentError,
    DatabaseError,
    DBAPIError,
    InterfaceError,
    NoSuchModuleError,
    OperationalError,
)

from discovery.archive.errors import ArchiveUnreachableError, NotADatabaseError

DEFAULT_DATABASE_URL = "sqlite:///./lossforge.db"

# Execution option that asks for a write transaction (BEGIN IMMEDIATE on SQLite).
WRITE_OPTION = "lossforge_write"

_SQLITE_BUSY_TIMEOUT_MS = 30_000
# Seconds PostgreSQL's client waits for a server that does not answer (libpq waits for ever; a
# firewalled host would hang the CLI for the operating system's TCP timeout instead).
_PG_CONNECT_TIMEOUT_S = 10


def normalize_url(url: str) -> str:
    """Map the URL spellings users paste to the drivers lossforge ships.

    `postgres://` and `postgresql://` would make SQLAlchemy look for psycopg2; lossforge depends on
    psycopg 3, so both become `postgresql+psycopg://`.
    """
    try:
        parsed = make_url(url)
    except ArgumentError:  # its message would echo the URL, password included
        raise ValueError(
            "is not a database URL: use sqlite:///PATH (a file) or "
            "postgresql://USER:PASSWORD@HOST:PORT/DATABASE"
        ) from None
    if parsed.drivername in ("postgres", "postgresql"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def create_archive_engine(url: str, *, echo: bool = False) -> Engine:
    """Build an engine for `url` with the settings the archive relies on."""
    url = normalize_url(url)
    parsed = make_url(url)
    try:
        if parsed.get_backend_name() != "sqlite":
            connect_args = {}
            if parsed.get_backend_name() == "postgresql" and "connect_timeout" not in parsed.query:
                connect_args["connect_timeout"] = _PG_CONNECT_TIMEOUT_S
            return create_engine(url, echo=echo, pool_pre_ping=True, connect_args=connect_args)
        engine = create_engine(url, echo=echo, connect_args={"check_same_thread": False})
    except (NoSuchModuleError, ImportError):  # mysql://, or a driver that is not installed
        if parsed.get_backend_name() == "postgresql":
            raise ArchiveUnreachableError(
                f"lossforge cannot use the database at {shown_url(url)}: the PostgreSQL driver "
                "(psycopg 3) is not installed; install it with "
                "pip install 'lossforge[postgres]'"
            ) from None
        raise ArchiveUnreachableError(
            f"lossforge cannot use the database at {shown_url(url)}: it has no driver for "
            f"{parsed.drivername!r}; use sqlite:///PATH or postgresql://USER@HOST:PORT/DATABASE "
            "in LOSSFORGE_DATABASE_URL"
        ) from None
    _configure_sqlite(engine)
    return engine


def shown_url(url: str | URL) -> str:
    """The URL as messages and logs show it: the password masked."""
    return make_url(url).render_as_string(hide_password=True)


@contextmanager
def opening(engine: Engine) -> Iterator[None]:
    """Around a first contact with the database: a refused or failed connection becomes one
    sentence naming the URL and what to do (ArchiveUnreachableError, NotADatabaseError). Other
    errors pass unchanged."""
    try:
        yield
    except DBAPIError as exc:
        shown = shown_url(engine.url)
        reason = _reason(exc, engine.url)
        sqlite = engine.dialect.name == "sqlite"
        if sqlite and isinstance(exc, DatabaseError) and not isinstance(exc, OperationalError):
            raise NotADatabaseError(
                f"{engine.url.database} is not an SQLite database ({reason}), so {shown} cannot "
                "be the archive: point LOSSFORGE_DATABASE_URL at a lossforge archive, or at a "
                "new file to start one"
            ) from None
        if not isinstance(exc, (OperationalError, InterfaceError)):
            raise
        if sqlite:
            hint = (
                "another process held its write lock for longer than the busy timeout; try again"
                if "locked" in reason
                else "check that its directory exists and is writable, or set "
                "LOSSFORGE_DATABASE_URL"
            )
            raise ArchiveUnreachableError(
                f"cannot open the archive at {shown}: {reason}; {hint}"
            ) from None
        raise ArchiveUnreachableError(
            f"cannot connect to the archive at {shown}: {reason}; check that the database "
            "server is running and that LOSSFORGE_DATABASE_URL names it (host, port, user, "
            "password, database)"
        ) from None


def _reason(exc: DBAPIError, url: URL) -> str:
    """The driver's first line (libpq adds hints on further lines), the password masked."""
    lines = str(exc.orig).strip().splitlines() or [type(exc.orig).__name__]
    reason = lines[0].rstrip(".")
    if url.password:
        reason = reason.replace(str(url.password), "***")
    return reason


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
