"""`lossforge db`: create, upgrade and inspect the archive's schema."""

from __future__ import annotations

import click
from sqlalchemy.engine import make_url

from api.settings import Settings
from discovery.archive import (
    create_archive_engine,
    current_revision,
    downgrade,
    head_revision,
    upgrade,
)


def _where(url: str, engine_revision: str | None) -> str:
    shown = make_url(url).render_as_string(hide_password=True)
    return f"{shown} is at revision {engine_revision or 'base (no lossforge tables)'}"


@click.group()
def db() -> None:
    """Manage the archive database (LOSSFORGE_DATABASE_URL)."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True, help="Target revision.")
@click.pass_obj
def db_upgrade(settings: Settings, revision: str) -> None:
    """Create the schema, or bring it up to date."""
    engine = create_archive_engine(settings.database_url)
    upgrade(engine, revision)
    click.echo(_where(settings.database_url, current_revision(engine)))


@db.command("downgrade")
@click.argument("revision")
@click.pass_obj
def db_downgrade(settings: Settings, revision: str) -> None:
    """Take the schema down to REVISION ('base' drops every lossforge table)."""
    engine = create_archive_engine(settings.database_url)
    downgrade(engine, revision)
    click.echo(_where(settings.database_url, current_revision(engine)))


@db.command("current")
@click.pass_obj
def db_current(settings: Settings) -> None:
    """Print the database's revision and the newest one this lossforge knows."""
    engine = create_archive_engine(settings.database_url)
    click.echo(f"database: {current_revision(engine) or 'empty'}  head: {head_revision()}")
