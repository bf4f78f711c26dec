"""Schema migrations, run from code: upgrade on start, downgrade on request.

The migration scripts live beside this module (`migrations/`), so an installed lossforge carries
them; `alembic.ini` at the repository root points the `alembic` command at the same folder. The
engine's own connection is handed to Alembic, so SQLite gets the WAL and locking settings of
`db.create_archive_engine` during migrations too.

An archive at a revision missing from `migrations/` was written by a newer lossforge: it is
refused (UnknownRevisionError) before Alembic is asked to move it, and it is never touched.
"""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.script.revision import RevisionError
from sqlalchemy import Engine

from discovery.archive.db import opening, shown_url
from discovery.archive.errors import UnknownRevisionError

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def _config(engine: Engine | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if engine is not None:
        config.attributes["engine"] = engine
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema up to `revision` (default: the newest)."""
    known_revision(engine)
    command.upgrade(_config(engine), revision)


def downgrade(engine: Engine, revision: str) -> None:
    """Take the schema down to `revision` (`base` drops every table)."""
    known_revision(engine)
    command.downgrade(_config(engine), revision)


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at, or None for an empty database. A database that cannot be
    reached raises ArchiveUnreachableError or NotADatabaseError (db.opening)."""
    with opening(engine), engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def known_revision(engine: Engine) -> str | None:
    """`current_revision`, refused with UnknownRevisionError when this lossforge's migrations do
    not include it."""
    revision = current_revision(engine)
    if revision is not None and not is_known(revision):
        raise UnknownRevisionError(
            f"the archive at {shown_url(engine.url)} is at schema revision {revision}, which "
            f"this lossforge ({version('lossforge')}) does not know: a newer lossforge wrote it; "
            "upgrade lossforge (`pip install -U lossforge`), or point LOSSFORGE_DATABASE_URL at "
            "another archive"
        )
    return revision


def is_known(revision: str) -> bool:
    """Is `revision` one of this lossforge's migrations?"""
    try:
        return (
            ScriptDirectory.from_config(_config()).revision_map.get_revision(revision) is not None
        )
    except RevisionError:
        return False


def head_revision() -> str:
    """The newest revision this version of lossforge knows."""
    head = ScriptDirectory.from_config(_config()).get_current_head()
    if head is None:  # pragma: no cover - the package always ships migrations
        raise RuntimeError(f"no migrations found in {MIGRATIONS_DIR}")
    return head
