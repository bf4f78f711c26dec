"""The `lossforge` console script, run as a user runs it (a subprocess)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import inspect

from discovery.archive import (
    CandidateStatus,
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
