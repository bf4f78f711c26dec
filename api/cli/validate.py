"""`lossforge validate FILE`: run one candidate through the sandbox and print the verdict.

FILE is a `.py` file holding the loss function, or a `.json` candidate `{"name", "thought",
"code"}` (a proposer reply with a fenced code block works too). Exit status 0 when ACCEPTED,
1 when REJECTED; the human output is one line (with `--json`, the verdict as one JSON line).

The sandbox's text checks (size caps, UTF-8, hidden characters: sandbox/text.py) run first, on
the file's size before it is read and on its text before anything parses it, so an oversized or
unreadable file is refused without importing torch or starting the worker pool. Otherwise the
pool is started for this one candidate and stopped afterwards.
"""

from __future__ import annotations

from pathlib import Path

import click

from api.cli.candidates import read_candidate
from sandbox import Candidate, SandboxConfig, SandboxUnavailableError, Verdict, text


@click.option("--json", "as_json", is_flag=True, help="Print the verdict as one JSON line.")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def _validate(file: Path, as_json: bool) -> None:
    config = SandboxConfig(pool_size=1)
    # A .py file is the code itself; anything else is a reply that holds it (text.screen's caps).
    is_code = file.suffix == ".py"
    cap = config.max_source_bytes * (1 if is_code else text.REPLY_CAP_FACTOR)
    size = file.stat().st_size
    if size > cap:  # refused unread
        problem = text.too_large(size, cap, "code" if is_code else "the reply")
        verdict = text.rejected(file.stem if is_code else "candidate", problem)
    else:
        candidate = read_candidate(file)
        verdict = text.refusal(candidate, max_source_bytes=config.max_source_bytes)
        if verdict is None:
            verdict = _sandbox_verdict(candidate, config)
    click.echo(verdict.to_json() if as_json else verdict.summary())
    raise SystemExit(0 if verdict.accepted else 1)


def _sandbox_verdict(candidate: Candidate | str, config: SandboxConfig) -> Verdict:
    from sandbox import Sandbox  # noqa: PLC0415 (imports torch: only for text that passed)

    try:
        with Sandbox(config) as sandbox:
            return sandbox.validate(candidate)
    except SandboxUnavailableError as exc:
        raise click.ClickException(f"the sandbox could not run: {exc}") from exc


validate = click.command(
    "validate",
    help="Validate a loss candidate (FILE: .py with the loss def, or a .json candidate). "
    "Exit 0 when accepted, 1 when rejected.",
)(_validate)
