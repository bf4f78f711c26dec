"""`lossforge serve` stopped under a running campaign: SIGTERM with an event stream open pauses
the campaign first and ends the stream; another server resumes it; SIGKILL of that server leaves
an engine whose server is gone, which pauses itself; a third server resumes it to the end."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from discovery.archive import Archive, CampaignStatus
from tests.faults.conftest import SPEC, World, check_archive, finished_runs, wait_for


@dataclass
class Stream:
    """A campaign's event stream, read by a thread until the server ends it."""

    events: list[dict[str, object]] = field(default_factory=list)
    thread: threading.Thread | None = None

    def kinds(self) -> list[object]:
        return [e["kind"] for e in self.events]


def _follow(base_url: str, campaign_id: int, after: int = 0) -> Stream:
    stream = Stream()

    def read() -> None:
        url = f"{base_url}/api/campaigns/{campaign_id}/events"
        with httpx.stream("GET", url, params={"after": after}, timeout=120) as response:
            for line in response.iter_lines():
                if line.startswith("data: "):
                    stream.events.append(json.loads(line.removeprefix("data: ")))

    stream.thread = threading.Thread(target=read, daemon=True)
    stream.thread.start()
    return stream


def _serve(world: World) -> tuple[subprocess.Popen[str], str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    server = world.lossforge("serve", "--port", str(port), name="serve")
    base = f"http://127.0.0.1:{port}"
    wait_for("the server", lambda: httpx.get(f"{base}/healthz").status_code == 200, 120)
    return server, base


def _adopt_engine(world: World, archive: Archive, campaign_id: int) -> None:
    """Wait for the engine the server started to take the lease; kill it when the test ends."""
    lease = wait_for("the engine's lease", lambda: archive.get_campaign(campaign_id).lease)
    world.adopt(lease.pid)  # type: ignore[attr-defined]


def _start_campaign(world: World, base: str) -> int:
    response = httpx.post(f"{base}/api/campaigns", json={**SPEC, "budget": {"candidates": 6}})
    assert response.status_code == 202, response.text
    campaign_id = int(response.json()["id"])
    archive = world.archive()
    _adopt_engine(world, archive, campaign_id)
    archive.engine.dispose()
    return campaign_id


def test_sigterm_then_sigkill_of_the_server(
    make_world: Callable[..., World], new_database_url: Callable[[str], str]
) -> None:
    world = make_world(new_database_url("postgresql"))
    archive = world.archive()
    first, base = _serve(world)
    campaign_id = _start_campaign(world, base)
    stream = _follow(base, campaign_id)
    wait_for("an evaluation event", lambda: "evaluation" in stream.kinds())

    # SIGTERM with a stream open: the campaign is paused first, then the stream ends.
    first.send_signal(signal.SIGTERM)
    first.wait(timeout=120)  # bounded: the stream does not hold the server up
    assert stream.thread is not None
    stream.thread.join(timeout=30)
    assert not stream.thread.is_alive()  # the server ended the stream
    _, err = world.output(first)
    assert "Traceback" not in err, err[-3000:]
    campaign = archive.get_campaign(campaign_id)
    assert campaign.status is CampaignStatus.PAUSED
    assert "the API server stopped" in (campaign.reason or "")
    assert campaign.lease is None  # its engine stopped and let go
    check_archive(archive, campaign_id)

    # Another server resumes it; then that server dies by SIGKILL, its engine running on.
    second, base = _serve(world)
    done = len(finished_runs(archive, campaign_id))
    assert httpx.post(f"{base}/api/campaigns/{campaign_id}/resume").status_code == 202
    _adopt_engine(world, archive, campaign_id)
    wait_for("more finished runs", lambda: len(finished_runs(archive, campaign_id)) > done)
    os.kill(second.pid, signal.SIGKILL)  # the server only: its engine runs on, unwatched
    second.wait(timeout=30)
    # The engine notices its server is gone and pauses itself, letting go of the lease.
    paused = wait_for(
        "the orphaned engine to pause",
        lambda: (
            (c := archive.get_campaign(campaign_id)).status is CampaignStatus.PAUSED
            and c.lease is None
            and c
        ),
    )
    assert "the server that started this engine" in (paused.reason or "")  # type: ignore[attr-defined]
    check_archive(archive, campaign_id)

    # A third server shows it and resumes it to the end.
    _, base = _serve(world)
    shown = httpx.get(f"{base}/api/campaigns/{campaign_id}").json()
    assert shown["status"] == "PAUSED" and shown["owner"] is None
    after = max(e.id for e in archive.list_events(campaign_id=campaign_id))
    assert httpx.post(f"{base}/api/campaigns/{campaign_id}/resume").status_code == 202
    stream = _follow(base, campaign_id, after=after)
    assert stream.thread is not None
    stream.thread.join(timeout=300)
    finish = [e for e in stream.events if e["kind"] == "finish"]
    assert finish and finish[-1]["payload"]["status"] == "FINISHED", stream.events[-3:]  # type: ignore[index]
    assert archive.get_campaign(campaign_id).status is CampaignStatus.FINISHED
    check_archive(archive, campaign_id)
    archive.engine.dispose()
