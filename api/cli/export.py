"""`lossforge export CANDIDATE_ID [-o FILE.py]`: write an archived loss as a standalone module.

The module (discovery/service/export.py) holds the loss as its proposer wrote it, its provenance
and scores, the sandbox's recorded probe values with `self_check()`, and a TRL DPOTrainer that
uses it.
Without -o the file gets its suggested name (lossforge_<name>_<id>.py) in the current directory;
-o DIR writes that name into DIR. The path written is printed; an existing file is replaced.
"""

from __future__ import annotations

from pathlib import Path

import click

from api.settings import Settings
from discovery.archive import NotFoundError, open_archive
from discovery.service.export import ExportError, export_module


@click.command()
@click.argument("candidate_id", type=int)
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    help="File to write (or a directory for the suggested name) [default: "
    "lossforge_<name>_<id>.py in the current directory].",
)
@click.pass_obj
def export(settings: Settings, candidate_id: int, output: Path | None) -> None:
    """Export candidate CANDIDATE_ID's loss as a standalone Python module."""
    archive = open_archive(settings.database_url)
    try:
        module = export_module(archive, candidate_id)
    except (NotFoundError, ExportError) as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        archive.engine.dispose()
    path = Path(module.filename) if output is None else output
    if path.is_dir():
        path = path / module.filename
    try:
        path.write_text(module.text, encoding="utf-8")
    except OSError as exc:
        raise click.ClickException(f"cannot write {path}: {exc.strerror or exc}") from None
    click.echo(str(path))
