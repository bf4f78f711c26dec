"""`lossforge db`: create, upgrade and inspect the archive's schema.

`db current` exits 1 when the database is not at this lossforge's newest revision, so a deploy
script can check before it starts anything. A database that cannot be opened is reported by the
command group (api/cli/__init__.py) in one line.
"""

from __future__ import annotations

import click
from alembic.util import CommandError

from api.settings import Settings
from discovery.archive import (
    create_archive_engine,
    current_revision,
    downgrade,
    head_revision,
    upgrade,
)
from discovery.archive.db import shown_url
from discovery.archive.migrate import known_revision


def _where(url: str, engine_revision: str | None) -> str:
    return f"{shown_url(url)} is at revision {engine_revision or 'base (no lossforge tables)'}"


def _unknown_target(revision: str, exc: CommandError) -> click.ClickException:
    return click.ClickException(
        f"cannot move the archive to revision {revision!r}: {exc}; `lossforge db current` "
        "shows where it is and this lossforge's newest revision"
    )


@click.group()
def db() -> None:
    """Manage the archive database (LOSSFORGE_DATABASE_URL)."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True, help="Target revision.")
@click.pass_obj
def db_upgrade(settings: Settings, revision: str) -> None:
    """Create the schema, or bring it up to date."""
    engine = create_archive_engine(settings.database_url)
    try:
        upgrade(engine, revision)
    except CommandError as exc:
        raise _unknown_target(revision, exc) from None
    click.echo(_where(settings.database_url, current_revision(engine)))


@db.command("downgrade")
@click.argument("revision")
@click.pass_obj
def db_downgrade(settings: Settings, revision: str) -> None:
    """Take the schema down to REVISION ('base' drops every lossforge table)."""
    engine = create_archive_engine(settings.database_url)
    try:
        downgrade(engine, revision)
    except CommandError as exc:
        raise _unknown_target(revision, exc) from None
    click.echo(_where(settings.database_url, current_revision(engine)))


@db.command("current")
@click.pass_obj
def db_current(settings: Settings) -> None:
    """Print the database's revision and the newest one this lossforge knows (exit status 1
    when they differ)."""
    engine = create_archive_engine(settings.database_url)
    revision, head = current_revision(engine), head_revision()
    click.echo(f"database: {revision or 'empty'}  head: {head}")
    if revision == head:
        return
    known_revision(engine)  # a newer lossforge's revision: UnknownRevisionError says so
    where = shown_url(settings.database_url)
    state = f"is at the older revision {revision}" if revision else "has no lossforge tables"
    raise click.ClickException(
        f"the archive at {where} {state}, not at {head}: run `lossforge db upgrade` (any command "
        "that opens the archive also upgrades it)"
    )
