"""The rich tables the CLI prints: a leaderboard (`leaderboard`, and the end of `run`), what it
found (confirmed discoveries, proxy validity), and the list of campaigns (`campaigns`).

Pure formatting over discovery's rows; nothing here reads the archive or imports anything heavy.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from discovery.scores import LeaderboardRow, ProxyValidity

if TYPE_CHECKING:
    from discovery.service.leaderboard import Correlation

_VERDICT = {
    "confirmed": "[green]confirmed[/green]",
    "overfit": "[red]overfit[/red]",
    "unconfirmed": "-",
}


def interval(score: float | None, low: float | None, high: float | None, n: int) -> str:
    """`+0.0123±0.0163 (4)`: the mean and the half-width of its 95% interval (a t-interval is
    symmetric; `--json` gives both ends); the mean alone below 2 seeds; `-` without a score."""
    if score is None:
        return "-"
    if low is None or high is None:
        return f"{score:+.4f} ({n})"
    return f"{score:+.4f}±{(high - low) / 2:.4f} ({n})"


def correlation(c: Correlation) -> str:
    if c.rho is None:
        return f"- (n = {c.n}, too few candidates)"
    if c.low is None or c.high is None:
        return f"{c.rho:+.2f} (n = {c.n})"
    return f"{c.rho:+.2f} [{c.low:+.2f}, {c.high:+.2f}] (n = {c.n})"


def leaderboard_table(
    campaign_id: int, rows: Sequence[LeaderboardRow], *, title: str | None = None
) -> Table:
    """The rows given, in their order (the caller ranks and cuts them). `title` None: the
    leaderboard's; "": none."""
    default = f"campaign {campaign_id} leaderboard: score vs DPO ± 95% interval (n seeds)"
    table = Table(
        title=default if title is None else title or None,
        caption="public: selection seeds; fresh: held-out tasks on seeds never selected on; "
        "verdict '-': unconfirmed; baselines dimmed",
        box=None,
        padding=(0, 1, 0, 0),  # one space between columns: 80 columns hold every one
        pad_edge=False,
    )
    # At 80 columns the intervals wrap (the n goes below); names, ranks and verdicts do not.
    for column in ("id", "name", "stage"):
        table.add_column(column, no_wrap=True, min_width=len(column))
    for column in ("public", "held-out", "fresh"):
        table.add_column(column, min_width=14)
    table.add_column("verdict", no_wrap=True, min_width=9)
    for r in rows:
        public = (
            interval(r.score, r.score_low, r.score_high, r.seeds)
            if r.score is not None
            else r.status.lower()
        )
        table.add_row(
            str(r.id),
            escape(r.name),  # a proposer's name is text, never markup
            r.stage or "-",
            public,
            interval(r.held_out_score, r.held_out_low, r.held_out_high, r.held_out_seeds),
            interval(
                r.fresh_held_out_score,
                r.fresh_held_out_low,
                r.fresh_held_out_high,
                r.fresh_held_out_seeds,
            ),
            _VERDICT.get(r.confirmation, r.confirmation),
            style="dim" if r.origin == "baseline" else None,
        )
    return table


def print_findings(
    console: Console, rows: Sequence[LeaderboardRow], validity: ProxyValidity
) -> None:
    """Confirmed discoveries (or that there are none) and whether the proxy predicts held-out."""
    confirmed = [r for r in rows if r.origin != "baseline" and r.confirmation == "confirmed"]
    if confirmed:
        names = ", ".join(f"#{r.id} {escape(r.name)}" for r in confirmed[:5])
        console.print(f"confirmed discoveries (held-out, fresh seeds, above DPO): {names}")
    else:
        console.print(
            "no confirmed discovery: no proposed loss beats DPO on held-out tasks on fresh "
            "seeds with its 95% interval above 0"
        )
    for stage, c in validity.public_vs_held_out.items():
        console.print(f"proxy validity at {stage}: Spearman(public, held-out) {correlation(c)}")
    for pair, c in validity.between_stages.items():
        console.print(f"stage agreement {pair}: Spearman {correlation(c)}")


def best_proposed(rows: Sequence[LeaderboardRow]) -> LeaderboardRow | None:
    """The first proposed (not baseline) row with a public score: the leaderboard's best."""
    return next((r for r in rows if r.origin != "baseline" and r.score is not None), None)


def print_run_summary(
    console: Console, campaign_id: int, rows: Sequence[LeaderboardRow], *, top: int = 5
) -> None:
    """What a finished `lossforge run` leaves on screen: the leaderboard's top rows and the
    commands to go on with (show, export, serve)."""
    shown = [r for r in rows if r.has_score][:top]
    if shown:
        # A line of its own, not the table's title: rich would wrap a title to the table's width.
        console.print(
            f"campaign {campaign_id}: top {len(shown)} of the leaderboard (score vs DPO ± 95% "
            "interval, n seeds)"
        )
        console.print(leaderboard_table(campaign_id, shown, title=""))
    else:
        console.print(f"campaign {campaign_id}: no candidate has a score yet")
    best = best_proposed(rows)
    console.print("next:")
    if best is not None:
        console.print(
            f"  lossforge show {best.id}    (the best proposed loss, {escape(best.name)})"
        )
        console.print(f"  lossforge export {best.id} -o loss.py    (as a standalone module)")
    console.print(f"  lossforge leaderboard --campaign {campaign_id}    (every row)")
    console.print("  lossforge serve    (the web page and the API)")
