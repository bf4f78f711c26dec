"""`lossforge run`, `leaderboard`, `show`, `pause`, `cancel`: campaigns from the command line.

While `run` draws its live table, log records go through the same rich console (they print above
the table instead of breaking it); when it ends it prints the leaderboard's top rows and the
commands to go on with."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

import click
from pydantic import SecretStr
from rich.console import Console
from rich.live import Live
from rich.table import Table

from api.cli import tables
from api.settings import Settings
from discovery import control
from discovery.archive import (
    Archive,
    CampaignStatus,
    DatabaseUnavailableError,
    LeaseHeldError,
    LeaseLostError,
    NotFoundError,
    open_archive,
)
from discovery.lease import LeaseConfig
from discovery.progress import Progress
from discovery.service.running import RayUnavailableError, Secret
from discovery.spec import CampaignSpec, load_spec
from discovery.spec_text import SpecError

# The engine, the proposers and the runner import torch, transformers and Ray: they are imported
# inside the commands that need them, so `show`, `pause`, `cancel` and a spec with a typo answer
# without paying for them.
if TYPE_CHECKING:
    from discovery.runner import RunnerConfig


def _secret(value: SecretStr | None) -> Secret | None:
    return Secret(value.get_secret_value()) if value is not None else None


def runner_config(settings: Settings) -> RunnerConfig:
    """What running campaigns (and their jobs) takes from the settings."""
    from discovery.proposers.llm.wiring import LLMSettings  # noqa: PLC0415 - heavy, see above
    from discovery.runner import RunnerConfig  # noqa: PLC0415 - heavy, see above

    key = settings.judge_key()
    return RunnerConfig(
        database_url=settings.database_url,
        cache_dir=settings.cache_dir,
        ray_address=settings.ray_address,
        ray_auth_token=_secret(settings.ray_auth_token),
        judge_api_key=Secret(key.get_secret_value()) if key is not None else None,
        llm=LLMSettings(
            base_url=settings.llm_base_url, model=settings.llm_model, api_key=settings.llm_api_key
        ),
        lease=LeaseConfig(ttl_s=settings.lease_ttl_s, heartbeat_s=settings.lease_heartbeat_s),
        db_retry_s=settings.db_retry_s,
    )


def _progress_table(p: Progress) -> Table:
    table = Table(title=f"campaign {p.campaign_id}: {p.status}", show_header=False)
    limit = p.budget_limits.get("candidates")
    table.add_row("candidates proposed", f"{p.candidates}" + (f" / {limit:g}" if limit else ""))
    table.add_row("by status", ", ".join(f"{k.lower()} {v}" for k, v in sorted(p.counts.items())))
    for stage in p.stages:
        table.add_row(
            f"stage {stage.name}",
            f"{stage.finished} candidates scored, {stage.done} runs finished, "
            f"{stage.in_flight} queued or running",
        )
    if p.best_name is not None and p.best_score is not None:
        best = f"{p.best_name}: {p.best_score:+.4f} ± {p.best_spread:.4f} vs DPO at {p.best_stage}"
    else:
        best = "-"
    table.add_row("best discovered", best)
    table.add_row("budget used", _budget_line(p.budget_used, p.budget_limits))
    return table


def _budget_line(used: dict[str, float], limits: dict[str, float]) -> str:
    parts = []
    for key, unit, fmt in (
        ("wall_time_s", "s wall", "{:.0f}"),
        ("compute_hours", "CPU-h", "{:.3f}"),
        ("llm_dollars", "$ LLM", "{:.2f}"),
    ):
        text = fmt.format(used.get(key, 0.0))
        if key in limits:
            text += " / " + fmt.format(limits[key])
        parts.append(f"{text} {unit}")
    return ", ".join(parts)


def _say_if_interrupted(archive: Archive, campaign_id: int) -> None:
    """Check the campaign exists; say so when a resume takes over from an engine that is gone."""
    try:
        current = archive.get_campaign(campaign_id)
    except NotFoundError as exc:
        raise click.ClickException(str(exc)) from None
    if current.status is CampaignStatus.INTERRUPTED and current.lease is not None:
        click.echo(
            f"campaign {campaign_id} was INTERRUPTED: its engine ({current.lease.describe()}) "
            f"last beat at {current.lease.heartbeat:%H:%M:%S} UTC; taking it over",
            err=True,
        )


@click.command()
@click.argument(
    "spec_file", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option("--resume", "resume_id", type=int, help="Continue campaign ID where it stopped.")
@click.option("--quiet", is_flag=True, help="No live display; print the outcome only.")
# The API's launcher: start only a PENDING campaign (a pause sent meanwhile is obeyed).
@click.option("--launched", is_flag=True, hidden=True)
@click.pass_obj
def run(
    settings: Settings, spec_file: Path | None, resume_id: int | None, quiet: bool, launched: bool
) -> None:
    """Run a discovery campaign from SPEC_FILE (YAML/JSON), or resume one with --resume ID."""
    if (spec_file is None) == (resume_id is None):
        raise click.UsageError("give a SPEC_FILE or --resume ID (one of them)")
    # The spec before the archive, by the loader the API uses too: a file that is no spec, or a
    # bad field, is refused before the database is touched (and without importing torch).
    spec = None if spec_file is None else _read_spec(spec_file)
    from discovery.engine import RESTARTABLE  # noqa: PLC0415 - heavy, see above
    from discovery.proposers.errors import ProposerConfigError  # noqa: PLC0415 - heavy, see above
    from discovery.runner import create_campaign, run_campaign  # noqa: PLC0415 - heavy, see above

    archive = open_archive(settings.database_url, lease_ttl_s=settings.lease_ttl_s)
    if spec is not None:
        campaign_id = create_campaign(archive, spec)
    else:
        campaign_id = resume_id  # type: ignore[assignment]
        _say_if_interrupted(archive, campaign_id)
    archive.engine.dispose()
    click.echo(f"campaign {campaign_id}", err=True)

    console = Console(stderr=True)
    if not quiet:
        _log_through(console)
    start_from = (CampaignStatus.PENDING,) if launched else RESTARTABLE
    # Launched by `lossforge serve`: if that server dies, this engine pauses itself.
    parent_pid = os.getppid() if launched else None
    try:
        if quiet:
            status = run_campaign(
                runner_config(settings), campaign_id, start_from=start_from, parent_pid=parent_pid
            )
        else:
            with Live(console=console, refresh_per_second=2, transient=False) as live:
                status = run_campaign(
                    runner_config(settings),
                    campaign_id,
                    observer=lambda p: live.update(_progress_table(p)),
                    start_from=start_from,
                    parent_pid=parent_pid,
                )
    except RayUnavailableError as exc:
        raise click.ClickException(
            f"campaign {campaign_id} not started: {exc}; then run "
            f"`lossforge run --resume {campaign_id}`"
        ) from None
    except ProposerConfigError as exc:
        raise click.ClickException(
            f"campaign {campaign_id} not started: {exc}; then run "
            f"`lossforge run --resume {campaign_id}`"
        ) from None
    except (LeaseHeldError, LeaseLostError) as exc:
        raise click.ClickException(str(exc)) from None
    except DatabaseUnavailableError as exc:
        raise click.ClickException(
            f"campaign {campaign_id} stopped: {exc} (`lossforge run --resume {campaign_id}`)"
        ) from None
    archive = open_archive(settings.database_url, lease_ttl_s=settings.lease_ttl_s)
    reason = archive.get_campaign(campaign_id).reason
    click.echo(f"campaign {campaign_id} {status}: {reason}")
    if not launched:  # a server's child: its log is no place for a screenful
        from discovery.service.leaderboard import campaign_leaderboard  # noqa: PLC0415

        rows = campaign_leaderboard(archive, campaign_id)
        tables.print_run_summary(Console(), campaign_id, rows)
    archive.engine.dispose()
    stopped_on_request = launched and status is CampaignStatus.CANCELLED
    ok = status in (CampaignStatus.FINISHED, CampaignStatus.PAUSED) or stopped_on_request
    raise SystemExit(0 if ok else 1)


def _log_through(console: Console) -> None:
    """Send every log record through `console`, the one that draws the live table: rich prints
    them above it rather than into it. The level stays the one the settings chose."""
    from rich.logging import RichHandler  # noqa: PLC0415 - only a live run needs it

    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.addHandler(RichHandler(console=console, show_path=False, log_time_format="%H:%M:%S"))


def _read_spec(spec_file: Path) -> CampaignSpec:
    """The spec in SPEC_FILE (at most MAX_SPEC_BYTES of it are read), or one error line: the
    document's sentence names the file; a field's problems are prefixed with it."""
    try:
        return load_spec(spec_file)
    except SpecError as exc:
        raise click.ClickException(f"{spec_file}: {exc}" if exc.problems else str(exc)) from None


@click.command()
@click.option("--campaign", "campaign_id", type=int, help="Campaign ID [default: the latest].")
@click.option("--json", "as_json", is_flag=True, help="Print the rows as a JSON list.")
@click.option("--limit", type=int, default=30, show_default=True)
@click.option("--scored", is_flag=True, help="Only candidates with a score (public or held-out).")
@click.pass_obj
def leaderboard(
    settings: Settings, campaign_id: int | None, as_json: bool, limit: int, scored: bool
) -> None:
    """Candidates ranked by the highest stage reached, then the low end of their score's 95%
    interval vs DPO."""
    from discovery.service.leaderboard import campaign_report  # noqa: PLC0415

    archive = open_archive(settings.database_url)
    if campaign_id is None:
        campaigns = archive.list_campaigns()
        if not campaigns:
            raise click.ClickException(
                "the archive holds no campaign yet; start one: lossforge run"
            )
        campaign_id = campaigns[0].id
    try:
        rows, validity = campaign_report(archive, campaign_id)
    except NotFoundError as exc:
        raise click.ClickException(str(exc)) from None
    ranked = [(rank, r) for rank, r in enumerate(rows, 1) if r.has_score or not scored]
    if as_json:
        click.echo(json.dumps([r.as_dict() for _, r in ranked]))
        return
    console = Console()
    console.print(tables.leaderboard_table(campaign_id, [r for _, r in ranked[:limit]]))
    tables.print_findings(console, rows, validity)


@click.command()
@click.argument("candidate_id", type=int)
@click.pass_obj
def show(settings: Settings, candidate_id: int) -> None:
    """A candidate's code, provenance, verdict and every evaluation."""
    archive = open_archive(settings.database_url)
    try:
        c = archive.get_candidate(candidate_id)
    except NotFoundError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"#{c.id} {c.name}  [{c.status}]  origin={c.origin}  parents={c.parent_ids}")
    if c.reason:
        click.echo(f"reason: {c.reason}")
    if c.thought:
        click.echo(f"thought: {c.thought}")
    click.echo(c.canonical_code or c.source)
    for e in archive.list_evaluations(candidate_id=candidate_id):
        score = f"{e.score:+.4f}" if e.score is not None else "-"
        click.echo(
            f"  {e.stage}/{e.task} seed {e.seed} attempt {e.attempt}: {e.status} "
            f"score {score} {e.reason or ''}"
        )


def _control(settings: Settings, campaign_id: int, request: str) -> None:
    archive = open_archive(settings.database_url, lease_ttl_s=settings.lease_ttl_s)
    try:
        if request == "pause":
            record = control.pause(archive, campaign_id, by="CLI")
        else:
            record = control.cancel(archive, campaign_id, by="CLI", engine_running=False)
    except (NotFoundError, control.ControlError) as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        archive.engine.dispose()
    click.echo(f"campaign {campaign_id}: {record.status} requested; a running engine stops shortly")


@click.command()
@click.argument("campaign_id", type=int)
@click.pass_obj
def pause(settings: Settings, campaign_id: int) -> None:
    """Pause a campaign (resume it with `lossforge run --resume ID`)."""
    _control(settings, campaign_id, "pause")


@click.command()
@click.argument("campaign_id", type=int)
@click.pass_obj
def cancel(settings: Settings, campaign_id: int) -> None:
    """Cancel a campaign for good."""
    _control(settings, campaign_id, "cancel")
