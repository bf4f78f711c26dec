"""One engine per campaign, on both backends: the lease, fenced writes, final evaluations,
INTERRUPTED, and a row written with its event."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update

from discovery import control
from discovery.archive import (
    Archive,
    CampaignRecord,
    CampaignStatus,
    EvaluationClosedError,
    EvaluationStatus,
    LeaseHeldError,
    LeaseLostError,
    NewEvent,
)
from discovery.archive.models import Campaign, utcnow
from tests.factories import make_campaign, make_candidate


def _stop_beating(archive: Archive, campaign_id: int) -> None:
    """What a killed engine leaves: a heartbeat older than the TTL (no sleeping)."""
    long_ago = utcnow() - timedelta(seconds=archive.lease_ttl_s + 60)
    with archive.engine.begin() as db:
        db.execute(
            update(Campaign).where(Campaign.id == campaign_id).values(lease_heartbeat=long_ago)
        )


def _take(archive: Archive, campaign: CampaignRecord, owner: str, **kwargs: str) -> None:
    archive.acquire_lease(campaign.id, owner=owner, host="host-a", pid=101, **kwargs)


def test_a_live_lease_refuses_a_second_engine_naming_the_owner(archive: Archive) -> None:
    campaign = make_campaign(archive)
    _take(archive, campaign, "first")
    with pytest.raises(LeaseHeldError, match=r"another engine \(host host-a, pid 101, since "):
        archive.acquire_lease(campaign.id, owner="second", host="host-b", pid=202)
    assert archive.renew_lease(campaign.id, "first")
    assert not archive.renew_lease(campaign.id, "second")
    lease = archive.get_campaign(campaign.id).lease
    assert lease is not None and (lease.owner, lease.expired) == ("first", False)
    # A holder known to be dead (its pid gone from its host) is taken over at once.
    _take(archive, campaign, "third", dead_owner="first")
    assert archive.get_campaign(campaign.id).lease.owner == "third"  # type: ignore[union-attr]


def test_an_expired_lease_is_taken_over_and_fences_out_its_old_owner(archive: Archive) -> None:
    campaign = make_campaign(archive)
    _take(archive, campaign, "old")
    old = archive.fenced(campaign.id, "old")
    old.transition_campaign(
        campaign.id, to=CampaignStatus.RUNNING, allowed_from=[CampaignStatus.PENDING]
    )
    assert archive.get_campaign(campaign.id).status is CampaignStatus.RUNNING
    _stop_beating(archive, campaign.id)
    shown = archive.get_campaign(campaign.id)
    assert shown.status is CampaignStatus.INTERRUPTED and shown.lease.expired  # type: ignore[union-attr]
    assert [c.status for c in archive.list_campaigns()] == [CampaignStatus.INTERRUPTED]

    archive.acquire_lease(campaign.id, owner="new", host="host-b", pid=202)
    events = len(archive.list_events(campaign_id=campaign.id))
    with pytest.raises(LeaseLostError, match=r"now owned by another engine \(host host-b, pid 202"):
        old.append_event(campaign_id=campaign.id, kind="proposal")
    with pytest.raises(LeaseLostError):
        old.transition_campaign(
            campaign.id, to=CampaignStatus.FINISHED, allowed_from=[CampaignStatus.RUNNING]
        )
    assert len(archive.list_events(campaign_id=campaign.id)) == events  # nothing written
    assert archive.get_campaign(campaign.id).status is CampaignStatus.RUNNING
    assert not archive.renew_lease(campaign.id, "old")
    archive.fenced(campaign.id, "new").append_event(campaign_id=campaign.id, kind="proposal")


def test_a_stop_releases_the_lease_with_its_status_and_event(archive: Archive) -> None:
    campaign = make_campaign(archive)
    _take(archive, campaign, "engine")
    mine = archive.fenced(campaign.id, "engine")
    finish = NewEvent(campaign.id, "finish", {"status": "FINISHED"})
    mine.transition_campaign(
        campaign.id,
        to=CampaignStatus.FINISHED,
        allowed_from=[CampaignStatus.PENDING],
        event=finish,
        release_lease=True,
    )
    stored = archive.get_campaign(campaign.id)
    assert (stored.status, stored.lease) == (CampaignStatus.FINISHED, None)
    assert [e.kind for e in archive.list_events(campaign_id=campaign.id)] == ["finish"]
    # A refused change writes no event either.
    assert (
        archive.transition_campaign(
            campaign.id,
            to=CampaignStatus.PAUSED,
            allowed_from=[CampaignStatus.RUNNING],
            event=finish,
        )
        is None
    )
    assert len(archive.list_events(campaign_id=campaign.id)) == 1


def test_a_finished_evaluation_is_never_overwritten(archive: Archive) -> None:
    campaign = make_campaign(archive)
    candidate = make_candidate(archive, campaign)
    row = archive.add_evaluation(candidate_id=candidate.id, stage="bandit", task="t", seed=0)
    event = NewEvent(campaign.id, "evaluation", {"candidate": candidate.id})
    done = archive.finish_evaluation(
        row.id, status=EvaluationStatus.DONE, metrics={"reward": 1.0}, event=event
    )
    assert [e.kind for e in archive.list_events(campaign_id=campaign.id)] == ["evaluation"]
    with pytest.raises(EvaluationClosedError, match="already DONE; a finished evaluation is never"):
        archive.finish_evaluation(
            row.id, status=EvaluationStatus.ERROR, reason="late duplicate", event=event
        )
    (stored,) = archive.list_evaluations(candidate_id=candidate.id)
    assert (stored.status, stored.metrics, stored.reason) == (
        EvaluationStatus.DONE,
        done.metrics,
        None,
    )
    assert len(archive.list_events(campaign_id=campaign.id)) == 1  # nor its event


def test_an_interrupted_campaign_can_be_resumed_paused_or_failed(archive: Archive) -> None:
    campaign = make_campaign(archive)
    _take(archive, campaign, "engine")
    archive.transition_campaign(
        campaign.id, to=CampaignStatus.RUNNING, allowed_from=[CampaignStatus.PENDING]
    )
    with pytest.raises(control.ControlError, match=r"is RUNNING: .* its engine runs \(host host-a"):
        control.resume(archive, campaign.id)
    # A second engine's exit must not fail the campaign its live owner runs.
    control.fail(archive, campaign.id, "the refused engine exited with status 1")
    assert archive.get_campaign(campaign.id).status is CampaignStatus.RUNNING

    _stop_beating(archive, campaign.id)
    assert control.resume(archive, campaign.id).status is CampaignStatus.PENDING

    other = make_campaign(archive, name="other")
    _take(archive, other, "gone")
    archive.transition_campaign(
        other.id, to=CampaignStatus.RUNNING, allowed_from=[CampaignStatus.PENDING]
    )
    _stop_beating(archive, other.id)
    assert control.pause(archive, other.id, by="CLI").status is CampaignStatus.PAUSED
    # No engine is left to say it stopped: the pause says so, and event streams end on it.
    assert archive.list_events(campaign_id=other.id, kind="finish")[-1].payload["status"] == (
        "PAUSED"
    )
