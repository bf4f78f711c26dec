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

from api.cli.candidates import read_candidate
from api.cli.run import runner_config
from api.settings import Settings
from discovery.runner import stage_extras, stage_timeout
from evaluator.baselines import BASELINES
from evaluator.compare import (
    TaskComparison,
    plan,
    pooled,
    score_metric,
    stage_tasks,
    summarize,
)
from evaluator.dispatch import DispatchConfig, RayDispatcher
from evaluator.errors import RayUnavailableError
from evaluator.jobs import check_stage_config
from evaluator.results import RunStatus
from sandbox import Candidate, Sandbox, SandboxConfig, SandboxUnavailableError


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


def _report(comparisons: list[TaskComparison], stage: str, metric: str) -> dict[str, Any]:
    tasks = {}
    for c in comparisons:
        tasks[c.task] = {
            "held_out": c.held_out,
            "metric": metric,
            "candidate_mean": c.metric_mean(c.candidate, metric),
            "dpo_mean": c.metric_mean(c.baseline, metric),
            **c.score.as_dict(),
            "seeds": c.score.seeds,
            "candidate_runs": [_run(r) for r in c.candidate],
            "dpo_runs": [_run(r) for r in c.baseline],
        }
    return {
        "stage": stage,
        "metric": metric,
        "seeds": comparisons[0].seeds if comparisons else [],
        # Per seed, the mean over the public (held-out) tasks, then paired over seeds: the
        # numbers a campaign shows for this stage.
        "public": pooled(comparisons, held_out=False).as_dict(),
        "held_out": pooled(comparisons, held_out=True).as_dict(),
        "tasks": tasks,
    }


def _run(result: Any) -> dict[str, Any]:
    return {"status": str(result.status), "reason": result.reason, "metrics": result.metrics}


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
        check_stage_config(stage, config)  # type: ignore[arg-type]
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--config") from None
    known = stage_tasks(stage, config)  # type: ignore[arg-type]
    unknown = [t for t in tasks if t not in known]
    if unknown:
        raise click.BadParameter(f"unknown {stage} tasks {unknown}; known: {sorted(known)}")
    dispatcher = RayDispatcher(
        DispatchConfig(
            address=settings.ray_address,
            auth_token=runner_config(settings).ray_auth_token,
            timeout_s=stage_timeout(stage, config),
        )
    )
    try:  # before the sandbox's seconds: a cluster that cannot be joined says so at once
        dispatcher.check()
    except RayUnavailableError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        with Sandbox(SandboxConfig(pool_size=1)) as sandbox:
            verdict = sandbox.validate(read_candidate(file))
            dpo = sandbox.validate(Candidate(name="dpo", thought="", code=BASELINES["dpo"].source))
    except SandboxUnavailableError as exc:
        raise click.ClickException(f"the sandbox could not run: {exc}") from exc
    if not verdict.accepted:
        click.echo(verdict.summary())
        raise SystemExit(1)

    jobs = plan(
        stage=stage,  # type: ignore[arg-type]
        tasks=list(tasks or known),
        seeds=range(seed_start, seed_start + seeds),
        candidate=(verdict.candidate_name, verdict.graph_json or ""),
        baseline=("dpo", dpo.graph_json or ""),
        # The worker settings a campaign's jobs get: the tinylm cache, the hf judge's key.
        config={**config, **stage_extras(runner_config(settings)).get(stage, {})},
    )
    try:
        dispatcher.start()  # a cluster was checked above; a local instance starts here
    except RayUnavailableError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        results = dispatcher.run_all(jobs)
    finally:
        dispatcher.close()
    comparisons = summarize(stage, jobs, results)  # type: ignore[arg-type]
    report = _report(comparisons, stage, score_metric(stage, config))
    failed = any(r.status is not RunStatus.DONE for r in results)

    if as_json:
        click.echo(json.dumps({"candidate": verdict.candidate_name, **report}))
    else:
        _print_table(verdict.candidate_name, report)
    raise SystemExit(3 if failed else 0)


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
