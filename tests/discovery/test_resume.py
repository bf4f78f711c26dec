"""A campaign process killed with SIGKILL mid-evaluation resumes and completes, nothing twice."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import psutil

from discovery.archive import CampaignStatus, EvaluationStatus, open_archive

LOSSFORGE = str(Path(sys.executable).parent / "lossforge")

SPEC = """\
name: resume-test
seed: 5
proposer: {kind: evolve, batch_size: 2}
stages:
  - {name: bandit, tasks: [tabular, noisy], seeds: 2, config: {max_steps: 300}}
budget: {candidates: 6}
baselines: [dpo, hinge]
max_in_flight: 4
"""


def _lossforge(tmp_path: Path, *args: str, **kwargs: object) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "LOSSFORGE_DATABASE_URL": f"sqlite:///{tmp_path / 'a.db'}",
        "LOSSFORGE_CACHE_DIR": str(tmp_path / "cache"),
    }
    return subprocess.Popen(
        [LOSSFORGE, *args],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def _kill_tree(proc: subprocess.Popen[str]) -> None:
    """SIGKILL the campaign process and everything it started (Ray's processes too)."""
    family = [proc.pid, *(p.pid for p in psutil.Process(proc.pid).children(recursive=True))]
    for pid in family:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    proc.wait(timeout=60)


def test_sigkill_mid_evaluation_then_resume(tmp_path: Path) -> None:
    (tmp_path / "spec.yaml").write_text(SPEC)
    first = _lossforge(tmp_path, "run", "spec.yaml", "--quiet", start_new_session=True)
    archive = None
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:  # wait until it is in the middle of evaluating
        time.sleep(0.5)
        if archive is None and (tmp_path / "a.db").exists():
            archive = open_archive(f"sqlite:///{tmp_path / 'a.db'}", migrate=False)
        if archive is None:
            continue
        try:
            rows = archive.list_evaluations()
        except Exception:  # the schema may not be there yet
            continue
        done = sum(e.status is EvaluationStatus.DONE for e in rows)
        pending = sum(e.status is EvaluationStatus.PENDING for e in rows)
        if done >= 6 and pending >= 2:
            break
    else:
        raise AssertionError(f"the campaign never got going: {first.communicate(timeout=5)}")
    _kill_tree(first)
    assert archive is not None
    (campaign,) = archive.list_campaigns()
    assert campaign.status is CampaignStatus.RUNNING  # it died without a word

    second = _lossforge(tmp_path, "run", "--resume", str(campaign.id), "--quiet")
    out, err = second.communicate(timeout=600)
    assert second.returncode == 0, err[-3000:]
    assert archive.get_campaign(campaign.id).status is CampaignStatus.FINISHED

    done = Counter(
        (e.candidate_id, e.stage, e.task, e.seed)
        for e in archive.list_evaluations(campaign_id=campaign.id, status=EvaluationStatus.DONE)
    )
    assert done and max(done.values()) == 1  # nothing evaluated twice
    open_rows = [
        e
        for e in archive.list_evaluations(campaign_id=campaign.id)
        if e.status in (EvaluationStatus.PENDING, EvaluationStatus.RUNNING)
    ]
    assert open_rows == []  # what was in flight at the kill was re-queued and finished
    proposed = [
        c for c in archive.list_candidates(campaign_id=campaign.id) if c.origin != "baseline"
    ]
    assert len(proposed) == 6

    board = _lossforge(tmp_path, "leaderboard", "--campaign", str(campaign.id), "--json")
    out, err = board.communicate(timeout=120)
    assert board.returncode == 0, err
    rows = json.loads(out)
    assert {"id", "name", "origin", "stage", "score", "spread"} <= set(rows[0])
    origins = {r["origin"] for r in rows}
    assert "baseline" in origins and "evolve" in origins
    dpo = next(r for r in rows if r["name"] == "dpo")
    assert dpo["score"] == 0.0 and dpo["stage"] == "bandit"
    archive.engine.dispose()
