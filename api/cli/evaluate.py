"""`lossforge evaluate FILE --stage S [--config FILE]`: a loss against DPO under identical
conditions.

The loss in FILE and the DPO baseline both go through the sandbox; their rebuilt graphs are
trained on every task of the stage (or `--task`) with seeds 0..N-1 as Ray tasks (a local Ray
instance, or the cluster at LOSSFORGE_RAY_ADDRESS). `--config` gives the stage's config as YAML or
JSON, the same mapping as a campaign spec stage's `config`; the hf stage needs one (its model,
data and beta grid, whose points are its tasks). Prints, per task, the stage's metric for both
and the score vs DPO (mean and spread over seeds); `--json` prints the same as one document.
Exit status: 0 when every run finished, 1 when the loss was rejected or the Ray cluster cannot be
joined (one sentence: its address and the fix), 2 on bad usage (a bad config names its field), 3
when some run failed (its status and reason are printed).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
import yaml
from rich.console import Console
from rich.table import Table

from api.cli.run import runner_config
from api.settings import Settings
from discovery.service.evaluate import (
    EvaluationUnavailableError,
    RunStatus,
    StageConfigError,
    UnknownTaskError,
    evaluate_loss,
    prepare,
)
from discovery.service.validation import read_candidate


def _read_config(path: Path | None) -> dict[str, Any]:
    """The stage config in a YAML or JSON file (JSON is YAML); {} without one."""
    if path is None:
        return {}
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise click.BadParameter(
            f"{path} is not YAML or JSON: {exc}", param_hint="--config"
        ) from None
    if config is None:
        return {}
    if not isinstance(config, dict):
        raise click.BadParameter(
            f"{path} must hold a mapping of stage config fields, not a {type(config).__name__}",
            param_hint="--config",
        )
    return config


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _interval(row: dict[str, Any]) -> str:
    """`+0.0123 [-0.0040, +0.0286]`; the mean alone below 2 seeds."""
    if row["score"] is None:
        return "-"
    if row["score_low"] is None:
        return f"{row['score']:+.4f}"
    return f"{row['score']:+.4f} [{row['score_low']:+.4f}, {row['score_high']:+.4f}]"


@click.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--stage", type=click.Choice(["bandit", "tinylm", "hf"]), required=True)
@click.option(
    "--config",
    "config_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The stage's config, YAML or JSON (a spec stage's `config`); hf needs one.",
)
@click.option("--task", "tasks", multiple=True, help="Only this task (repeatable).")
@click.option("--seeds", type=click.IntRange(1, 64), default=3, show_default=True)
@click.option(
    "--seed-start",
    type=click.IntRange(0, 2**31 - 1),
    default=0,
    show_default=True,
    help="First seed: runs seeds N..N+seeds-1, so a loss can be confirmed on seeds no campaign "
    "selected on.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
@click.pass_obj
def evaluate(
    settings: Settings,
    file: Path,
    stage: str,
    config_file: Path | None,
    tasks: tuple[str, ...],
    seeds: int,
    seed_start: int,
    as_json: bool,
) -> None:
    """Evaluate the loss in FILE (.py or .json candidate) against DPO at a stage."""
    config = _read_config(config_file)
    if stage == "hf" and config_file is None:
        raise click.UsageError("--stage hf needs --config FILE: its model, dataset and betas")
    try:
        request = prepare(
            stage,  # type: ignore[arg-type]
            config,
            tasks=tasks,
            seeds=range(seed_start, seed_start + seeds),
        )
    except StageConfigError as exc:
        raise click.BadParameter(str(exc), param_hint="--config") from None
    except UnknownTaskError as exc:
        raise click.BadParameter(str(exc)) from None
    try:
        outcome = evaluate_loss(request, read_candidate(file), runner=runner_config(settings))
    except EvaluationUnavailableError as exc:
        raise click.ClickException(str(exc)) from None
    if outcome.report is None:  # rejected: nothing was trained
        click.echo(outcome.verdict.summary())
        raise SystemExit(1)
    name = outcome.verdict.candidate_name
    if as_json:
        click.echo(json.dumps({"candidate": name, **outcome.report}))
    else:
        _print_table(name, outcome.report)
    raise SystemExit(3 if outcome.failed else 0)


def _print_table(name: str, report: dict[str, Any]) -> None:
    console = Console()
    table = Table(title=f"{name} vs DPO at stage {report['stage']} ({report['metric']})")
    for column in ("task", name, "dpo", "score vs DPO [95% interval]", "n"):
        table.add_column(column)
    for task, row in report["tasks"].items():
        label = f"{task} (held out)" if row["held_out"] else task
        table.add_row(
            label,
            _fmt(row["candidate_mean"]),
            _fmt(row["dpo_mean"]),
            _interval(row),
            str(row["n"]),
        )
    for which in ("public", "held_out"):
        if report[which]["n"]:
            table.add_row(
                f"[b]{which.replace('_', '-')} tasks[/b]",
                "",
                "",
                _interval(report[which]),
                str(report[which]["n"]),
            )
    console.print(table)
    for task, row in report["tasks"].items():
        for who in ("candidate_runs", "dpo_runs"):
            for seed, run in zip(report["seeds"], row[who], strict=True):
                if run["status"] != RunStatus.DONE:
                    console.print(
                        f"[red]{task} seed {seed} {who[:-5]}: {run['status']}[/red] {run['reason']}"
                    )
