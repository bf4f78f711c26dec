"""The whole flow over real HTTP, on SQLite and PostgreSQL: start a small evolve campaign through
the API (its engine a real process on a real local Ray), follow its server-sent events to the end,
read the leaderboard, export the best loss and check the module in a fresh process; pause, resume
and cancel a running campaign; an engine process killed mid-run leaves the campaign FAILED with the
reason, and a resume completes it with nothing evaluated twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import ray

from api.settings import Settings
from discovery.archive import EvaluationStatus, open_archive
from discovery.service.leaderboard import campaign_leaderboard
from tests.api.conftest import SMALL_SPEC, Served

LONG_SPEC = {
    **SMALL_SPEC,
    "name": "api-long",
    "proposer": {"kind": "evolve", "batch_size": 2},
    "stages": [{"name": "bandit", "tasks": ["tabular"], "seeds": 2, "config": {"max_steps": 200}}],
    "budget": {"candidates": 10},
    "max_in_flight": 2,
}


@pytest.fixture(scope="module")
def ray_address() -> Iterator[str]:
    """One local Ray for the module; the engines the API starts join it instead of starting
    their own."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, _node_ip_address="127.0.0.1")
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


BOTH = pytest.mark.parametrize("backend", ["sqlite", "postgresql"])


@pytest.fixture
def make_api(
    new_database_url: Callable[[str], str],
    serve: Callable[..., Served],
    ray_address: str,
    tmp_path: Path,
) -> Callable[[str], Served]:
    """make_api(backend) -> the app served on loopback with a new archive on that backend."""

    def make(backend: str) -> Served:
        return serve(
            Settings(
                database_url=new_database_url(backend),
                ray_address=ray_address,
                cache_dir=tmp_path / "cache",
                data_dir=tmp_path / "data",
            )
        )

    return make


def events(client: httpx.Client, campaign_id: int, after: int = 0) -> Iterator[dict[str, object]]:
    """The campaign's server-sent events, as they come, until the server ends the stream."""
    url = f"/api/campaigns/{campaign_id}/events"
    with client.stream("GET", url, params={"after": after}, timeout=180.0) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        kind = None
        for line in response.iter_lines():
            if line.startswith("event: "):
                kind = line.removeprefix("event: ")
            elif line.startswith("data: "):
                data = json.loads(line.removeprefix("data: "))
                assert data["kind"] == kind
                yield data


def until(kind: str, stream: Iterator[dict[str, object]]) -> dict[str, object]:
    for event in stream:
        if event["kind"] == kind:
            return event
    pytest.fail(f"the stream ended without a {kind!r} event")


def wait_stopped(client: httpx.Client, campaign_id: int) -> dict[str, object]:
    """The campaign once its engine process has exited."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        body = client.get(f"/api/campaigns/{campaign_id}").json()
        if not body["running"]:
            return body
        time.sleep(0.2)
    pytest.fail(f"campaign {campaign_id}'s engine did not exit")


def done_twice(api: Served, campaign_id: int) -> list[tuple[int, str, str, int]]:
    archive = open_archive(api.settings.database_url)
    try:
        done = Counter(
            (e.candidate_id, e.stage, e.task, e.seed)
            for e in archive.list_evaluations(campaign_id=campaign_id)
            if e.status is EvaluationStatus.DONE
        )
        return [key for key, n in done.items() if n > 1]
    finally:
        archive.engine.dispose()


@BOTH
def test_start_follow_read_the_leaderboard_and_export(
    make_api: Callable[[str], Served], backend: str, tmp_path: Path
) -> None:
    api = make_api(backend)
    client = api.client()
    started = client.post("/api/campaigns", json=SMALL_SPEC)
    assert started.status_code == 202, started.text
    campaign_id = started.json()["id"]

    seen = list(events(client, campaign_id))
    kinds = [e["kind"] for e in seen]
    for kind in ("created", "started", "proposal", "verdict", "evaluation", "stage_done", "budget"):
        assert kind in kinds, kinds
    assert kinds[-1] == "finish" and seen[-1]["payload"]["status"] == "FINISHED"
    ids = [e["id"] for e in seen]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)

    campaign = wait_stopped(client, campaign_id)
    assert campaign["status"] == "FINISHED"
    assert campaign["reason"] == "candidate budget reached"
    assert sum(campaign["counts"].values()) == 6 + 3  # proposed + baselines
    assert campaign["budget"]["used"]["wall_time_s"] > 0
    assert campaign["best"] is not None and campaign["stages"] == ["bandit"]

    board = client.get(f"/api/campaigns/{campaign_id}/leaderboard").json()
    assert board["total"] == 9 and len(board["rows"]) == 9
    assert [r["rank"] for r in board["rows"]] == list(range(1, 10))
    origins = {r["origin"] for r in board["rows"]}
    assert {"baseline", "evolve"} <= origins
    dpo = next(r for r in board["rows"] if r["name"] == "dpo")
    assert dpo["score"] == 0.0 and dpo["seeds"] == 2
    assert (dpo["score_low"], dpo["score_high"], dpo["confirmation"]) == (0.0, 0.0, "unconfirmed")
    # A bandit-only campaign has no held-out task: nothing can be confirmed, and it says so.
    assert campaign["confirmed"] == 0
    assert campaign["validity"]["public_vs_held_out"] == {}
    assert campaign["validity"]["between_stages"] == {}
    # The same rows as `lossforge leaderboard --json`, ranked.
    archive = open_archive(api.settings.database_url)
    try:
        cli_rows = [r.as_dict() for r in campaign_leaderboard(archive, campaign_id)]
    finally:
        archive.engine.dispose()
    assert [{k: r[k] for k in cli_rows[0]} for r in board["rows"]] == cli_rows
    page = client.get(f"/api/campaigns/{campaign_id}/leaderboard?offset=2&limit=3").json()
    assert [r["rank"] for r in page["rows"]] == [3, 4, 5] and page["total"] == 9

    best_id = campaign["best"]["candidate_id"]
    candidate = client.get(f"/api/candidates/{best_id}").json()
    assert candidate["origin"] == "evolve" and "def loss" in candidate["source"]
    assert len(candidate["evaluations"]) >= 2 and candidate["row"]["id"] == best_id
    curve = client.get(f"/api/candidates/{best_id}/loss-curve").json()
    assert len(curve["margin"]) == len(curve["loss"]) == len(curve["dpo"]["grad"])

    exported = client.get(f"/api/candidates/{best_id}/export")
    assert exported.status_code == 200
    assert exported.headers["content-type"].startswith("text/x-python")
    filename = exported.headers["content-disposition"].split("filename=")[1].strip('"')
    assert filename.endswith(".py")
    module = tmp_path / filename
    module.write_text(exported.text)
    check = subprocess.run(
        [sys.executable, "-c", f"import {module.stem} as m; m.self_check(); print('ok')"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert check.returncode == 0 and check.stdout.strip() == "ok", check.stderr[-2000:]


@BOTH
def test_pause_resume_and_cancel_a_running_campaign(
    make_api: Callable[[str], Served], backend: str
) -> None:
    api = make_api(backend)
    client = api.client()
    campaign_id = client.post("/api/campaigns", json=LONG_SPEC).json()["id"]
    stream = events(client, campaign_id)
    until("evaluation", stream)

    paused = client.post(f"/api/campaigns/{campaign_id}/pause")
    assert paused.status_code == 202 and paused.json()["status"] == "PAUSED"
    finish = until("finish", stream)
    assert finish["payload"]["status"] == "PAUSED"
    assert list(stream) == []  # the stream of a paused campaign ends after its finish event
    stopped = wait_stopped(client, campaign_id)
    assert stopped["status"] == "PAUSED"
    assert client.post(f"/api/campaigns/{campaign_id}/pause").status_code == 409

    resumed = client.post(f"/api/campaigns/{campaign_id}/resume")
    assert resumed.status_code == 202 and resumed.json()["status"] == "PENDING"
    stream = events(client, campaign_id, after=int(finish["id"]))
    assert until("started", stream)["payload"] == {"resumed": True}
    until("evaluation", stream)
    cancelled = client.post(f"/api/campaigns/{campaign_id}/cancel")
    assert cancelled.status_code == 202 and cancelled.json()["status"] == "CANCELLED"
    assert until("finish", stream)["payload"]["status"] == "CANCELLED"
    assert wait_stopped(client, campaign_id)["status"] == "CANCELLED"
    assert client.post(f"/api/campaigns/{campaign_id}/resume").status_code == 409

    archive = open_archive(api.settings.database_url)
    try:
        statuses = {e.status for e in archive.list_evaluations(campaign_id=campaign_id)}
        proposed = [
            c for c in archive.list_candidates(campaign_id=campaign_id) if c.origin != "baseline"
        ]
    finally:
        archive.engine.dispose()
    assert EvaluationStatus.PENDING not in statuses and EvaluationStatus.RUNNING not in statuses
    assert len(proposed) < LONG_SPEC["budget"]["candidates"]
    assert done_twice(api, campaign_id) == []


def test_a_killed_engine_leaves_the_campaign_failed_and_a_resume_completes_it(
    make_api: Callable[[str], Served],
) -> None:
    # One backend: what differs between them (the archive's writes) the tests above cover.
    api = make_api("sqlite")
    client = api.client()
    campaign_id = client.post("/api/campaigns", json=LONG_SPEC).json()["id"]
    stream = events(client, campaign_id)
    until("evaluation", stream)
    child = api.app.state.launcher._children[campaign_id]
    os.killpg(child.pid, signal.SIGKILL)  # the engine and everything it started

    finish = until("finish", stream)
    assert finish["payload"]["status"] == "FAILED"
    failed = wait_stopped(client, campaign_id)
    assert failed["status"] == "FAILED"
    assert "killed by signal 9" in failed["reason"] and "resume" in failed["reason"]

    assert client.post(f"/api/campaigns/{campaign_id}/resume").status_code == 202
    end = until("finish", events(client, campaign_id, after=int(finish["id"])))
    assert end["payload"]["status"] == "FINISHED", end
    assert wait_stopped(client, campaign_id)["status"] == "FINISHED"
    assert done_twice(api, campaign_id) == []
