"""The live progress view of `lossforge run`: what a user watching a campaign sees."""

from __future__ import annotations

import logging

from rich.console import Console

from api.cli.run import _log_through, _progress_table
from discovery.progress import Progress, StageProgress


def render(progress: Progress) -> str:
    console = Console(record=True, width=160)
    console.print(_progress_table(progress))
    return console.export_text()


def test_the_view_shows_candidates_stages_best_and_budget_against_limits() -> None:
    text = render(
        Progress(
            campaign_id=7,
            status="RUNNING",
            candidates=12,
            counts={"EVALUATED": 9, "REJECTED": 2, "ACCEPTED": 1},
            in_flight=3,
            best_name="evo-1234",
            best_score=0.0213,
            best_spread=0.004,
            best_stage="tinylm",
            stages=[StageProgress("bandit", 16, 2, 30), StageProgress("tinylm", 3, 1, 12)],
            budget_used={"wall_time_s": 125.0, "compute_hours": 0.05, "llm_dollars": 0.0},
            budget_limits={"candidates": 24, "wall_time_s": 840},
        )
    )
    assert "campaign 7: RUNNING" in text
    assert "12 / 24" in text
    assert "evaluated 9" in text and "rejected 2" in text
    assert "16 candidates scored, 30 runs finished, 2 queued or running" in text
    assert "evo-1234: +0.0213 ± 0.0040 vs DPO at tinylm" in text
    assert "125 / 840 s wall" in text


def test_before_any_score_the_best_is_a_dash() -> None:
    text = render(Progress(campaign_id=1, status="RUNNING"))
    assert "best discovered" in text and "evo" not in text


def test_log_records_go_through_the_console_that_draws_the_live_table() -> None:
    console = Console(record=True, width=160)
    root = logging.getLogger()
    saved = list(root.handlers)
    try:
        _log_through(console)
        logging.getLogger("discovery.engine").warning("engine started in %.0f s", 35.0)
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved:
            root.addHandler(handler)
    text = console.export_text()
    assert "engine started in 35 s" in text and "WARNING" in text
