"""`lossforge run` with an LLM proposer, as a user runs it: settings from the environment, the
scripted OpenAI-compatible server on loopback, the key nowhere in the output or the archive."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from sqlalchemy import select

from discovery.archive import CampaignStatus, CandidateStatus, open_archive
from discovery.archive.models import Base
from tests.discovery.llm_sources import BLEND, SOFT_HINGE
from tests.openai_server import Reply, ScriptedServer, candidates

LOSSFORGE = str(Path(sys.executable).parent / "lossforge")
KEY = "sk-cli-test-0a1b2c3d4e5f"
SPEC = """\
name: llm-cli
seed: 1
proposer: {kind: llm, batch_size: 2, llm: {backoff_s: 0.01}}
stages:
  - {name: bandit, tasks: [tabular], seeds: 1, config: {max_steps: 30}}
budget: {candidates: 2}
baselines: [dpo]
max_in_flight: 4
"""


def _run(tmp_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    (tmp_path / "spec.yaml").write_text(SPEC)
    clean = {k: v for k, v in os.environ.items() if not k.startswith("LOSSFORGE_LLM_")}
    return subprocess.run(
        [LOSSFORGE, "run", "spec.yaml", "--quiet"],
        cwd=tmp_path,
        env={
            **clean,
            "LOSSFORGE_DATABASE_URL": f"sqlite:///{tmp_path / 'a.db'}",
            "LOSSFORGE_CACHE_DIR": str(tmp_path / "cache"),
            "LOSSFORGE_LOG_LEVEL": "DEBUG",
            **env,
        },
        capture_output=True,
        text=True,
        timeout=280,
    )


def test_a_campaign_from_the_command_line(tmp_path: Path, openai_server: ScriptedServer) -> None:
    openai_server.push(Reply(content=candidates(("soft-hinge", SOFT_HINGE), ("blend", BLEND))))
    result = _run(
        tmp_path,
        {
            "LOSSFORGE_LLM_BASE_URL": openai_server.base_url,
            "LOSSFORGE_LLM_MODEL": "scripted",
            "LOSSFORGE_LLM_API_KEY": KEY,
        },
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "FINISHED: candidate budget reached" in result.stdout
    # It ends with the leaderboard's top rows and the commands to go on with.
    assert "of the leaderboard (score vs DPO" in result.stdout
    assert re.search(r"lossforge show \d+ ", result.stdout), result.stdout
    assert re.search(r"lossforge export \d+ -o loss\.py", result.stdout), result.stdout
    assert "lossforge serve" in result.stdout
    assert KEY not in result.stdout + result.stderr
    assert openai_server.authorizations == [f"Bearer {KEY}"]
    archive = open_archive(f"sqlite:///{tmp_path / 'a.db'}")
    try:
        [campaign] = archive.list_campaigns()
        assert campaign.status is CampaignStatus.FINISHED
        llm = [c for c in archive.list_candidates(campaign_id=campaign.id) if c.origin == "llm"]
        assert {c.status for c in llm} == {CandidateStatus.EVALUATED}
        assert len(archive.list_llm_calls(campaign_id=campaign.id)) == 1
        with archive.engine.connect() as connection:
            for table in Base.metadata.sorted_tables:
                assert KEY not in repr(connection.execute(select(table)).all()), table.name
    finally:
        archive.engine.dispose()


def test_missing_endpoint_settings_are_a_clear_error(tmp_path: Path) -> None:
    result = _run(tmp_path, {})
    assert result.returncode == 1
    assert "campaign 1 not started: no LLM endpoint" in result.stderr
    assert "LOSSFORGE_LLM_BASE_URL" in result.stderr and "--resume 1" in result.stderr
    assert "Traceback" not in result.stderr
