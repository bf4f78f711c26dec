"""`lossforge campaigns`: every campaign in the archive, newest first, as a table or JSON.

Each campaign's best proposed score and confirmed count come from its leaderboard
(discovery.service.leaderboard), which reads only the archive: this command imports no torch,
Ray or sandbox (tests/test_startup.py).
"""

from __future__ import annotations

import json
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from api.cli.tables import best_proposed, interval
from api.settings import Settings
from discovery.archive import CampaignRecord, open_archive
from discovery.scores import LeaderboardRow
from discovery.service.leaderboard import campaign_leaderboard


def campaign_line(record: CampaignRecord, rows: list[LeaderboardRow]) -> dict[str, Any]:
    """One campaign as `--json` prints it."""
    limits = record.spec.get("budget", {}) if isinstance(record.spec, dict) else {}
    best = best_proposed(rows)
    return {
        "id": record.id,
        "name": record.name,
        "status": str(record.status),
        "proposed": sum(r.origin != "baseline" for r in rows),
        "limit": limits.get("candidates"),
        "best": None
        if best is None
        else {
            "candidate_id": best.id,
            "name": best.name,
            "stage": best.stage,
            "score": best.score,
            "low": best.score_low,
            "high": best.score_high,
            "seeds": best.seeds,
        },
        "confirmed": sum(r.origin != "baseline" and r.confirmation == "confirmed" for r in rows),
        "created_at": record.created_at.isoformat(),
    }


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the campaigns as a JSON list.")
@click.pass_obj
def campaigns(settings: Settings, as_json: bool) -> None:
    """Every campaign, newest first: status, candidates proposed, best score vs DPO."""
    archive = open_archive(settings.database_url, lease_ttl_s=settings.lease_ttl_s)
    try:
        lines = [
            campaign_line(r, campaign_leaderboard(archive, r.id)) for r in archive.list_campaigns()
        ]
    finally:
        archive.engine.dispose()
    if as_json:
        click.echo(json.dumps(lines))
        return
    console = Console()
    if not lines:
        console.print("the archive holds no campaign yet; start one: lossforge run SPEC_FILE")
        return
    table = Table(
        title="campaigns, newest first: best proposed score vs DPO ± 95% interval (n seeds)",
        box=None,
        padding=(0, 1, 0, 0),
        pad_edge=False,
    )
    for column in ("id", "name", "status", "proposed", "best", "confirmed", "created"):
        table.add_column(column, no_wrap=column != "best")
    for line in lines:
        best = line["best"]
        limit = line["limit"]
        table.add_row(
            str(line["id"]),
            escape(line["name"]),
            line["status"],
            f"{line['proposed']}" + (f" / {limit:g}" if limit is not None else ""),
            "-"
            if best is None
            else f"#{best['candidate_id']} {escape(best['name'])} "
            f"{interval(best['score'], best['low'], best['high'], best['seeds'])} "
            f"at {best['stage']}",
            str(line["confirmed"]),
            line["created_at"][:16].replace("T", " "),
        )
    console.print(table)
