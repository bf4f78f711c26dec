"""Two engines on one campaign at once (SQLite; PostgreSQL in test_database_outage.py), SIGKILL
of the engine at several points, then resume."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient

from api.app import create_app
from api.settings import Settings
from discovery.archive import CampaignStatus
from tests.api.conftest import recording
from tests.faults.conftest import (
    TTL_S,
    World,
    check_archive,
    evaluating,
    finished_runs,
    kill_group,
    race,
    refused_by,
    wait_for,
)


def test_two_engines_then_sigkill_at_start_and_mid_evaluation_then_resume(
    make_world: Callable[..., World], new_database_url: Callable[[str], str]
) -> None:
    world = make_world(new_database_url("sqlite"))
    archive = world.archive()
    first, refused = race(world, archive)
    assert refused_by(refused, first)
    # Killed as soon as it has started: before its baselines are validated or queued.
    wait_for("the engine to start", lambda: archive.list_events(campaign_id=1, kind="started"))
    kill_group(first)

    # Its lease stops beating: the campaign reads INTERRUPTED, everywhere (here: the API).
    wait_for("INTERRUPTED", lambda: archive.get_campaign(1).status is CampaignStatus.INTERRUPTED)
    settings = Settings(database_url=world.database_url, lease_ttl_s=TTL_S, lease_heartbeat_s=0.4)
    with TestClient(create_app(settings, launcher=recording)) as client:
        shown = client.get("/api/campaigns/1").json()
        assert shown["status"] == "INTERRUPTED"
        assert shown["owner"]["pid"] == first.pid and shown["owner"]["expired"] is True
        assert [c["status"] for c in client.get("/api/campaigns").json()] == ["INTERRUPTED"]
        # Its event stream ends instead of waiting for an engine that is gone.
        assert client.get("/api/campaigns/1/events").status_code == 200

    second = world.lossforge("run", "--resume", "1", "--quiet")
    wait_for("evaluations in flight", lambda: evaluating(archive, 1))
    kill_group(second)  # mid-evaluation
    before = finished_runs(archive, 1)
    check_archive(archive, 1, before=before)  # resumable as it stands

    third = world.lossforge("run", "--resume", "1", "--quiet")
    code, _, err = world.finish(third)
    assert code == 0, err[-3000:]
    assert "Traceback" not in err
    assert archive.get_campaign(1).status is CampaignStatus.FINISHED
    assert archive.get_campaign(1).lease is None  # released with the final status
    check_archive(archive, 1, before=before)
    # Three engines ran; the refused one wrote nothing.
    assert len(archive.list_events(campaign_id=1, kind="started")) == 3
    archive.engine.dispose()
