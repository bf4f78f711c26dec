"""Several processes on one archive at once: nothing lost, nothing stored twice."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from discovery.archive import open_archive

ROOT = Path(__file__).resolve().parents[2]

# Each writer opens the archive itself (so the two also race on the schema upgrade of a new file),
# waits for the start file, then writes its candidates one transaction each.
WRITER = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    from discovery.archive import open_archive, DuplicateEvaluationError, EvaluationStatus

    url, campaign_id, writer, count, start = sys.argv[1:6]
    archive = open_archive(url)
    while not Path(start).exists():
        time.sleep(0.005)
    ids = []
    for i in range(int(count)):
        record = archive.add_candidate(
            campaign_id=int(campaign_id), name=f"{writer}-{i}", source="x", origin="evolve"
        )
        ids.append(record.id)
    # Both writers then race to store the same evaluation: exactly one may win.
    won = True
    try:
        archive.add_evaluation(candidate_id=int(sys.argv[6]), stage="bandit", task="t", seed=0,
                               status=EvaluationStatus.DONE, score=1.0)
    except DuplicateEvaluationError:
        won = False
    print(json.dumps({"ids": ids, "won": won}))
    """
)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_two_processes_writing_at_once_lose_nothing(
    backend: str, new_database_url: Callable[[str], str], tmp_path: Path
) -> None:
    url = new_database_url(backend)
    # The campaign and a shared target candidate exist first; the schema upgrade races in children.
    setup = open_archive(url)
    campaign = setup.create_campaign(name="race", spec={}, seed=0)
    target = setup.add_candidate(campaign_id=campaign.id, name="target", source="x", origin="user")
    start = tmp_path / "start"
    count = 150
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                WRITER,
                url,
                str(campaign.id),
                writer,
                str(count),
                str(start),
                str(target.id),
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for writer in ("a", "b")
    ]
    start.touch()
    outputs = []
    for proc in procs:
        out, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err
        outputs.append(json.loads(out.strip().splitlines()[-1]))

    names = [c.name for c in setup.list_candidates(campaign_id=campaign.id)]
    expected = {"target"} | {f"{w}-{i}" for w in ("a", "b") for i in range(count)}
    assert sorted(names) == sorted(expected)  # every write landed, none twice
    assert all(len(o["ids"]) == count for o in outputs)
    assert sorted(o["won"] for o in outputs) == [False, True]
    assert len(setup.list_evaluations(candidate_id=target.id)) == 1
    setup.engine.dispose()


def test_racing_writers_store_one_evaluation(
    new_database_url: Callable[[str], str], tmp_path: Path
) -> None:
    url = new_database_url("sqlite")
    setup = open_archive(url)
    campaign = setup.create_campaign(name="race", spec={}, seed=0)
    target = setup.add_candidate(campaign_id=campaign.id, name="target", source="x", origin="user")
    start = tmp_path / "start"
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                WRITER,
                url,
                str(campaign.id),
                writer,
                "1",
                str(start),
                str(target.id),
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for writer in ("a", "b")
    ]
    start.touch()
    wins = []
    for proc in procs:
        out, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err
        wins.append(json.loads(out.strip().splitlines()[-1])["won"])
    assert sorted(wins) == [False, True]
    assert len(setup.list_evaluations(candidate_id=target.id)) == 1
    setup.engine.dispose()
