"""The `lossforge` command line: one click group, one module per command family.

Settings are built here, once, and handed to commands through the click context; logging is
configured here and nowhere else.
"""

from __future__ import annotations

import logging
import sys

import click
from pydantic import ValidationError

from api.cli.db import db
from api.cli.evaluate import evaluate
from api.cli.export import export
from api.cli.run import cancel, leaderboard, pause, run, show
from api.cli.serve import serve
from api.cli.validate import validate
from api.settings import Settings


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="lossforge", prog_name="lossforge")
@click.pass_context
def main(ctx: click.Context) -> None:
    """lossforge: discover preference-optimization losses with a proposer in the loop."""
    try:
        settings = Settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"LOSSFORGE_{'_'.join(str(p) for p in err['loc']).upper()}: {err['msg']}"
            for err in exc.errors()
        )
        raise click.UsageError(f"invalid settings: {problems}") from None
    logging.basicConfig(
        level=settings.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # Schema upgrades run on every start; their step-by-step log is noise unless debugging.
    logging.getLogger("alembic").setLevel(
        max(logging.WARNING, logging.getLevelName(settings.log_level))
    )
    ctx.obj = settings


main.add_command(db)
main.add_command(evaluate)
main.add_command(export)
main.add_command(serve)
for command in (run, leaderboard, show, pause, cancel):
    main.add_command(command)
main.add_command(validate)
