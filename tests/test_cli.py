"""The `lossforge` console script, run as a user runs it (a subprocess)."""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import inspect

from api.cli import COMMANDS
from discovery.archive import (
    CandidateStatus,
    EvaluationStatus,
    create_archive_engine,
    head_revision,
    open_archive,
)
from discovery.runner import create_campaign
from discovery.spec import parse_spec
from tests.factories import scored_candidate

LOSSFORGE = shutil.which("lossforge") or str(Path(os.sys.executable).parent / "lossforge")


def run(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None):
    return subprocess.run(
        [LOSSFORGE, *args],
        env={**os.environ, **(env or {})},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_help_lists_the_commands() -> None:
    result = run("--help")
    assert result.returncode == 0
    for command in ("db", "serve"):
        assert command in result.stdout


def test_version() -> None:
    result = run("--version")
    assert result.returncode == 0 and "lossforge, version 0.1.0" in result.stdout


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_db_upgrade_creates_the_schema(
    backend: str, new_database_url: Callable[[str], str]
) -> None:
    url = new_database_url(backend)
    result = run("db", "upgrade", env={"LOSSFORGE_DATABASE_URL": url})
    assert result.returncode == 0, result.stderr
    assert f"revision {head_revision()}" in result.stdout
    engine = create_archive_engine(url)
    assert {"campaigns", "candidates", "evaluations", "llm_calls", "events"} <= set(
        inspect(engine).get_table_names()
    )
    engine.dispose()
    assert run("db", "current", env={"LOSSFORGE_DATABASE_URL": url}).stdout.startswith(
        f"database: {head_revision()}"
    )


def test_default_database_is_a_file_in_the_working_directory(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "LOSSFORGE_DATABASE_URL"}
    result = subprocess.run(
        [LOSSFORGE, "db", "upgrade"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "lossforge.db").exists()


def test_passwords_in_database_urls_are_not_printed(
    new_database_url: Callable[[str], str],
) -> None:
    # The test server trusts local connections, so any password is accepted and must be hidden.
    url = new_database_url("postgresql").replace("://", "://root:hunter2-pw@", 1)
    result = run("db", "upgrade", env={"LOSSFORGE_DATABASE_URL": url})
    assert result.returncode == 0, result.stderr
    assert "hunter2-pw" not in result.stdout + result.stderr
    assert "***" in result.stdout


def test_bad_settings_are_a_clear_usage_error() -> None:
    result = run("db", "current", env={"LOSSFORGE_API_TOKEN": "changeme"})
    assert result.returncode == 2
    assert "LOSSFORGE_API_TOKEN" in result.stderr and "placeholder" in result.stderr
    assert "Traceback" not in result.stderr


def test_leaderboard_scored_leaves_out_candidates_without_a_score(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    archive = open_archive(url)
    spec = {
        "name": "x",
        "stages": [{"name": "bandit", "tasks": ["tabular"]}],
        "budget": {"candidates": 3},
    }
    campaign = create_campaign(archive, parse_spec(spec))
    scored_candidate(archive, campaign, "good", scores=(0.1,))
    scored_candidate(archive, campaign, "bad", status=CandidateStatus.REJECTED)
    archive.engine.dispose()
    env = {"LOSSFORGE_DATABASE_URL": url}
    every = run("leaderboard", "--json", env=env)
    scored = run("leaderboard", "--json", "--scored", env=env)
    assert every.returncode == scored.returncode == 0, every.stderr + scored.stderr
    assert [r["name"] for r in json.loads(every.stdout)] == ["good", "bad"]
    assert [r["name"] for r in json.loads(scored.stdout)] == ["good"]
    table = run("leaderboard", "--scored", env=env)
    assert "good" in table.stdout and "bad" not in table.stdout


def test_leaderboard_shows_intervals_confirmation_and_proxy_validity(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    archive = open_archive(url)
    spec = {
        "name": "x",
        "stages": [{"name": "tinylm", "tasks": ["arithmetic", "sentiment"], "seeds": 2}],
        "budget": {"candidates": 3},
    }
    campaign = create_campaign(archive, parse_spec(spec))
    runs = {  # name -> task -> per-seed scores; seeds 0-1 select, 2-4 are fresh
        "good": {"arithmetic": [0.10, 0.11], "sentiment": [0.05, 0.06, 0.05, 0.06, 0.05]},
        "lead": {"arithmetic": [0.20, 0.21], "sentiment": [0.01, 0.02]},
        "worse": {"arithmetic": [-0.1, -0.12], "sentiment": [-0.05, -0.04]},
    }
    for name, tasks in runs.items():
        record = scored_candidate(archive, campaign, name)
        for task, scores in tasks.items():
            for seed, score in enumerate(scores):
                archive.add_evaluation(
                    candidate_id=record.id,
                    stage="tinylm",
                    task=task,
                    seed=seed,
                    status=EvaluationStatus.DONE,
                    score=score,
                )
    archive.engine.dispose()
    env = {"LOSSFORGE_DATABASE_URL": url}
    rows = {r["name"]: r for r in json.loads(run("leaderboard", "--json", env=env).stdout)}
    assert rows["good"]["confirmation"] == "confirmed"
    assert rows["good"]["fresh_held_out_seeds"] == 3 and rows["good"]["fresh_held_out_low"] > 0
    assert (
        rows["lead"]["confirmation"] == "unconfirmed" and rows["lead"]["fresh_held_out_seeds"] == 0
    )
    assert rows["lead"]["score_low"] < rows["lead"]["score"] < rows["lead"]["score_high"]
    table = run("leaderboard", env={**env, "COLUMNS": "250"})
    assert table.returncode == 0, table.stderr
    assert "confirmed discoveries (held-out, fresh seeds, above DPO):" in table.stdout
    assert "good" in table.stdout.split("confirmed discoveries")[1]
    # Public ranks worse < good < lead, held-out worse < lead < good: rho = 1 - 6 * 2 / 24 = 0.5
    # (3 candidates: too few for an interval).
    assert "Spearman(public, held-out) +0.50 (n = 3)" in table.stdout


def test_help_imports_no_heavy_package() -> None:
    # `lossforge --help` (and a typo) must start at once: no torch, transformers, Ray or sandbox.
    probe = (
        "import sys\n"
        "from api.cli import main\n"
        "try:\n"
        "    main(['--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = ('torch', 'transformers', 'ray', 'sandbox')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
    )
    result = subprocess.run(
        [os.sys.executable, "-c", probe], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "leaderboard" in result.stdout
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_the_help_lines_are_the_commands_own() -> None:
    for name, (module, attribute, line) in COMMANDS.items():
        command = getattr(importlib.import_module(module), attribute)
        assert command.name == name
        assert command.get_short_help_str(limit=300) == line
