"""`lossforge validate FILE`: run one candidate through the sandbox and print the verdict.

FILE is a `.py` file holding the loss function, or a `.json` candidate `{"name", "thought",
"code"}` (a proposer reply with a fenced code block works too). Exit status 0 when ACCEPTED,
1 when REJECTED; the human output is one line (with `--json`, the verdict as one JSON line).

The checking is discovery.service.validation's: an oversized or unreadable file is refused
without importing torch or starting the worker pool; otherwise the pool is started for this one
candidate and stopped afterwards.
"""

from __future__ import annotations

from pathlib import Path

import click

from discovery.service.validation import SandboxConfig, SandboxUnavailableError, validate_file


@click.option("--json", "as_json", is_flag=True, help="Print the verdict as one JSON line.")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def _validate(file: Path, as_json: bool) -> None:
    try:
        verdict = validate_file(file, SandboxConfig(pool_size=1))
    except SandboxUnavailableError as exc:
        raise click.ClickException(f"the sandbox could not run: {exc}") from exc
    click.echo(verdict.to_json() if as_json else verdict.summary())
    raise SystemExit(0 if verdict.accepted else 1)


validate = click.command(
    "validate",
    help="Validate a loss candidate (FILE: .py with the loss def, or a .json candidate). "
    "Exit 0 when accepted, 1 when rejected.",
)(_validate)
