"""Alembic environment for the lossforge archive.

Run two ways: from code (`discovery.archive.migrate`), which hands over its engine in
`config.attributes["engine"]`; or from the `alembic` command at the repository root, an entry point
of its own, which reads the database URL from `LOSSFORGE_DATABASE_URL` (the same variable the
settings read) and falls back to the same default file.
"""

import os

from alembic import context
from sqlalchemy import text

from discovery.archive.db import DEFAULT_DATABASE_URL, WRITE_OPTION, create_archive_engine
from discovery.archive.models import Base

config = context.config
target_metadata = Base.metadata

# Any constant will do: it names the lock that serialises concurrent upgrades on PostgreSQL.
_PG_MIGRATION_LOCK = 0x6C6F7373


def _engine():
    engine = config.attributes.get("engine")
    if engine is not None:
        return engine
    url = config.get_main_option("sqlalchemy.url") or os.environ.get(
        "LOSSFORGE_DATABASE_URL", DEFAULT_DATABASE_URL
    )
    return create_archive_engine(url)


def run_migrations_offline() -> None:
    url = config.get_main_option("sqlalchemy.url") or os.environ.get(
        "LOSSFORGE_DATABASE_URL", DEFAULT_DATABASE_URL
    )
    context.configure(
        url=url, target_metadata=target_metadata, literal_binds=True, render_as_batch=True
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = _engine()
    # WRITE_OPTION makes SQLite take the write lock up front, so two processes that upgrade at once
    # queue instead of failing; PostgreSQL gets an advisory lock for the same purpose.
    with engine.connect().execution_options(**{WRITE_OPTION: True}) as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _PG_MIGRATION_LOCK})
            connection.commit()
        try:
            context.configure(
                connection=connection,
                target_metadata=target_metadata,
                # SQLite cannot ALTER most things; batch mode rebuilds tables instead.
                render_as_batch=True,
                transaction_per_migration=True,
            )
            with context.begin_transaction():
                context.run_migrations()
        finally:
            if connection.dialect.name == "postgresql":
                connection.execute(
                    text("SELECT pg_advisory_unlock(:key)"), {"key": _PG_MIGRATION_LOCK}
                )
                connection.commit()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
