"""`lossforge campaigns`, run as a user runs it (a subprocess), on an archive filled through the
archive API: newest first, with status, proposed / limit, the best proposed score vs DPO and its
stage, the confirmed count; `--json` the same as data. And the summary a finished `run` prints,
on rows built here (the real end of a run is checked in tests/discovery/test_llm_cli.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from rich.console import Console

from api.cli.tables import print_run_summary
from discovery.archive import open_archive
from discovery.service.leaderboard import campaign_leaderboard
from tests.api.views_data import fill

LOSSFORGE = str(Path(sys.executable).parent / "lossforge")


def _campaigns(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [LOSSFORGE, "campaigns", *args],
        env={**os.environ, "LOSSFORGE_DATABASE_URL": url, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_campaigns_as_json_and_as_a_table(database_url: str) -> None:
    campaign, running, ids = fill(database_url)
    listed = _campaigns(database_url, "--json")
    assert listed.returncode == 0, listed.stderr
    first, second = json.loads(listed.stdout)
    assert (first["id"], second["id"]) == (running, campaign)  # newest first
    assert (second["status"], second["proposed"], second["limit"]) == ("PENDING", 4, 10)
    assert second["best"]["candidate_id"] == ids["alpha"] and second["best"]["stage"] == "tinylm"
    assert second["confirmed"] == 1
    assert (first["status"], first["proposed"], first["best"]) == ("RUNNING", 0, None)

    table = _campaigns(database_url)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    row = next(line for line in lines if line.startswith(f"{campaign} "))
    assert "views" in row and "PENDING" in row and "4 / 10" in row
    assert f"#{ids['alpha']} alpha +0.2050" in row and "at tinylm" in row
    assert lines.index(row) > next(i for i, line in enumerate(lines) if "RUNNING" in line)


def test_an_empty_archive_says_how_to_start(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    result = _campaigns(url)
    assert result.returncode == 0, result.stderr
    assert "no campaign yet" in result.stdout and "lossforge run" in result.stdout


def test_the_run_summary_shows_top_rows_and_the_next_commands(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    campaign, _, ids = fill(url)
    archive = open_archive(url)
    try:
        rows = campaign_leaderboard(archive, campaign)
    finally:
        archive.engine.dispose()
    console = Console(record=True, width=120)
    print_run_summary(console, campaign, rows, top=3)
    text = console.export_text()
    assert f"campaign {campaign}: top 3 of the leaderboard" in text
    shown = [line.split()[1] for line in text.splitlines() if line[:1].isdigit()]
    assert shown == ["alpha", "dpo", "beta"]
    assert f"lossforge show {ids['alpha']} " in text
    assert f"lossforge export {ids['alpha']} -o loss.py" in text
    assert "lossforge serve" in text
