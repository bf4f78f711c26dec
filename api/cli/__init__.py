"""The `lossforge` command line: one click group, one module per command family.

Settings are built here, once, and handed to commands through the click context; logging is
configured here and nowhere else. The archive's refusals (a database that cannot be reached, a
file that is not one, a schema from a newer lossforge, ...) end here as one line and exit status
1, whichever command met them.
"""

from __future__ import annotations

import importlib
import logging
import sys

import click
from pydantic import ValidationError

from api.settings import Settings
from discovery.archive.errors import ArchiveError

# name -> (module, attribute, one-line help). A command's module is imported only when that
# command runs: `lossforge --help` or a typo must not pay for torch, transformers and Ray, which
# the commands' modules pull in. tests/test_cli.py checks each help line against its command's.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "cancel": ("api.cli.run", "cancel", "Cancel a campaign for good."),
    "campaigns": (
        "api.cli.campaigns",
        "campaigns",
        "Every campaign, newest first: status, candidates proposed, best score vs DPO.",
    ),
    "db": ("api.cli.db", "db", "Manage the archive database (LOSSFORGE_DATABASE_URL)."),
    "evaluate": (
        "api.cli.evaluate",
        "evaluate",
        "Evaluate the loss in FILE (.py or .json candidate) against DPO at a stage.",
    ),
    "export": (
        "api.cli.export",
        "export",
        "Export candidate CANDIDATE_ID's loss as a standalone Python module.",
    ),
    "leaderboard": (
        "api.cli.run",
        "leaderboard",
        "Candidates ranked by the highest stage reached, then the low end of their score's 95% "
        "interval vs DPO.",
    ),
    "pause": (
        "api.cli.run",
        "pause",
        "Pause a campaign (resume it with `lossforge run --resume ID`).",
    ),
    "run": (
        "api.cli.run",
        "run",
        "Run a discovery campaign from SPEC_FILE (YAML/JSON), or resume one with --resume ID.",
    ),
    "serve": ("api.cli.serve", "serve", "Serve the API (and the web page) over HTTP."),
    "show": (
        "api.cli.run",
        "show",
        "A candidate's code, provenance, verdict and every evaluation.",
    ),
    "validate": (
        "api.cli.validate",
        "validate",
        "Validate a loss candidate (FILE: .py with the loss def, or a .json candidate).",
    ),
}


class _LazyGroup(click.Group):
    """A group whose commands are imported when they are looked up, not at start-up."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = COMMANDS.get(cmd_name)
        if entry is None:
            return None
        module, attribute, _ = entry
        return getattr(importlib.import_module(module), attribute)

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except ArchiveError as exc:  # each carries a sentence that names the URL and the fix
            raise click.ClickException(str(exc)) from None

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, COMMANDS[name][2]) for name in self.list_commands(ctx)])


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="lossforge", prog_name="lossforge")
@click.pass_context
def main(ctx: click.Context) -> None:
    """lossforge: discover preference-optimization losses with a proposer in the loop."""
    try:
        settings = Settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"LOSSFORGE_{'_'.join(str(p) for p in err['loc']).upper()}: "
            f"{err['msg'].removeprefix('Value error, ')}"
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
