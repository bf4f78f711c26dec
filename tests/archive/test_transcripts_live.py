"""Transcripts and live state in the archive, on both backends: an LLM call's messages, reply and
prompt hash; a campaign's `live` written with its lease heartbeat and cleared with its lease;
rejections counted by reason code; the cheap candidate summaries' lineage fields; and migration
0005 over a 0004 archive that holds rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text

from discovery.archive import (
    Archive,
    CandidateStatus,
    LLMCall,
    create_archive_engine,
    current_revision,
    downgrade,
    head_revision,
    upgrade,
)
from tests.factories import DPO_SOURCE, make_campaign

SENT = (
    {"role": "system", "content": "You write losses."},
    {"role": "user", "content": "Write 2 losses. Parents: dpo (+0.00)."},
)


def _call(**fields: Any) -> LLMCall:
    values: dict[str, Any] = {
        "purpose": "propose",
        "model": "m",
        "prompt_tokens": 10,
        "completion_tokens": 5,
        "cost_usd": 0.01,
        "latency_s": 0.2,
        "messages": SENT,
        "reply": '{"candidates": []}',
        "prompt_hash": "0123456789abcdef",
    }
    return LLMCall(**{**values, **fields})


def test_an_llm_calls_transcript_round_trips(archive: Archive) -> None:
    campaign = make_campaign(archive)
    other = make_campaign(archive, name="other")
    failed = archive.record_llm_call(
        campaign_id=campaign.id, call=_call(reply=None, error="HTTP 500", prompt_tokens=0)
    )
    answered = archive.record_llm_call(campaign_id=campaign.id, call=_call())
    repair = archive.record_llm_call(
        campaign_id=campaign.id,
        call=_call(
            purpose="repair",
            messages=(*SENT, {"role": "user", "content": "fix"}),
            prompt_hash="fedcba9876543210",
        ),
    )
    archive.record_llm_call(campaign_id=other.id, call=_call())  # same prompt, other campaign

    assert answered.messages == [dict(m) for m in SENT]
    assert answered.reply == '{"candidates": []}' and answered.prompt_hash == "0123456789abcdef"
    assert failed.reply is None and failed.messages == answered.messages
    # Read back as written; found by prompt hash within the campaign, and paged by id.
    [stored_failed, stored, stored_repair] = archive.list_llm_calls(campaign_id=campaign.id)
    assert (stored, stored_failed, stored_repair) == (answered, failed, repair)
    same = archive.list_llm_calls(campaign_id=campaign.id, prompt_hash="0123456789abcdef")
    assert [c.id for c in same] == [failed.id, answered.id]
    after = archive.list_llm_calls(campaign_id=campaign.id, after_id=failed.id, limit=1)
    assert [c.id for c in after] == [answered.id]
    # The judge's calls keep no transcript: the fields stay empty.
    judge = archive.record_llm_call(
        campaign_id=campaign.id,
        call=_call(purpose="judge", messages=None, reply=None, prompt_hash=None),
    )
    assert (judge.messages, judge.reply, judge.prompt_hash) == (None, None, None)


def test_live_state_rides_on_the_heartbeat_and_goes_with_the_lease(archive: Archive) -> None:
    campaign = make_campaign(archive)
    assert archive.get_campaign(campaign.id).live is None
    archive.acquire_lease(campaign.id, owner="engine", host="h", pid=1)
    live = {
        "phase": "proposing",
        "queue_depth": 3,
        "in_flight": 2,
        "updated_at": "2026-12-06T21:00:00+00:00",
    }
    assert archive.renew_lease(campaign.id, "engine", live=live)
    assert archive.get_campaign(campaign.id).live == live
    assert archive.renew_lease(campaign.id, "engine")  # a beat without news keeps it
    assert archive.get_campaign(campaign.id).live == live
    # Only the owner's heartbeat writes it.
    assert not archive.renew_lease(campaign.id, "stranger", live={"phase": "x"})
    assert archive.get_campaign(campaign.id).live == live
    archive.release_lease(campaign.id, "engine")
    assert archive.get_campaign(campaign.id).live is None

    # A takeover from a dead engine does not show that engine's state as the new one's.
    archive.acquire_lease(campaign.id, owner="dead", host="h", pid=2)
    archive.renew_lease(campaign.id, "dead", live=live)
    archive.acquire_lease(campaign.id, owner="new", host="h", pid=3, dead_owner="dead")
    assert archive.get_campaign(campaign.id).live is None


def _reject(archive: Archive, campaign_id: int, name: str, code: str | None) -> int:
    record = archive.add_candidate(
        campaign_id=campaign_id, name=name, source=DPO_SOURCE, origin="llm"
    )
    verdict = None if code is None else {"status": "rejected", "code": code, "stage": "graph"}
    archive.update_candidate(
        record.id, status=CandidateStatus.REJECTED, reason=f"{name} is wrong", verdict=verdict
    )
    return record.id


def test_rejections_are_counted_by_reason_code(archive: Archive) -> None:
    first, second = make_campaign(archive), make_campaign(archive, name="second")
    _reject(archive, first.id, "reads", "value_read")
    _reject(archive, first.id, "reads-again", "value_read")
    _reject(archive, first.id, "junk", None)  # a reply without a candidate: no verdict
    _reject(archive, second.id, "imports", "forbidden_import")
    accepted = archive.add_candidate(
        campaign_id=first.id, name="fine", source=DPO_SOURCE, origin="llm"
    )
    archive.update_candidate(
        accepted.id, status=CandidateStatus.ACCEPTED, verdict={"status": "accepted", "code": None}
    )

    assert archive.rejection_counts() == {
        "value_read": 2,
        "candidate_format": 1,
        "forbidden_import": 1,
    }
    assert archive.rejection_counts(campaign_id=first.id) == {
        "value_read": 2,
        "candidate_format": 1,
    }
    assert archive.rejection_counts(campaign_id=second.id + 1) == {}


def test_candidate_summaries_carry_lineage_and_rejection(archive: Archive) -> None:
    campaign = make_campaign(archive)
    before = datetime.now(UTC) - timedelta(seconds=1)
    parent = archive.add_candidate(
        campaign_id=campaign.id, name="dpo", source=DPO_SOURCE, origin="baseline"
    )
    child = archive.add_candidate(
        campaign_id=campaign.id,
        name="child",
        source=DPO_SOURCE,
        origin="evolve",
        parent_ids=[parent.id],
        island=2,
    )
    twin = archive.add_candidate(
        campaign_id=campaign.id, name="twin", source=DPO_SOURCE, origin="evolve", island=1
    )
    archive.update_candidate(twin.id, status=CandidateStatus.DUPLICATE, duplicate_of=child.id)
    rejected = _reject(archive, campaign.id, "reads", "value_read")

    rows = {s.id: s for s in archive.candidate_summaries(campaign_id=campaign.id)}
    assert list(rows) == [parent.id, child.id, twin.id, rejected]
    assert (rows[parent.id].island, rows[parent.id].parent_ids) == (None, [])
    assert (rows[child.id].island, rows[child.id].parent_ids) == (2, [parent.id])
    assert (rows[twin.id].status, rows[twin.id].duplicate_of) == (
        CandidateStatus.DUPLICATE,
        child.id,
    )
    assert [rows[i].rejection for i in rows] == [None, None, None, "value_read"]
    for summary in rows.values():
        assert summary.created_at is not None and summary.created_at >= before
        assert summary.created_at.tzinfo is not None


def test_migration_0005_upgrades_a_0004_archive_holding_rows(database_url: str) -> None:
    engine = create_archive_engine(database_url)
    upgrade(engine, "0004")
    now = datetime.now(UTC)
    with engine.begin() as connection:  # ids from the database: PostgreSQL's sequences move
        connection.execute(
            text(
                "INSERT INTO campaigns (name, status, spec, seed, budget_used, created_at, "
                "updated_at) VALUES ('old', 'FINISHED', '{}', 0, '{}', :now, :now)"
            ),
            {"now": now},
        )
        cid = connection.execute(text("SELECT id FROM campaigns")).scalar_one()
        connection.execute(
            text(
                "INSERT INTO llm_calls (campaign_id, purpose, model, prompt_tokens, "
                "completion_tokens, cost_usd, latency_s, created_at) "
                "VALUES (:cid, 'propose', 'old-model', 7, 3, 0.5, 1.0, :now)"
            ),
            {"now": now, "cid": cid},
        )
    upgrade(engine)
    assert current_revision(engine) == head_revision()
    store = Archive(engine)
    campaign = store.get_campaign(cid)
    assert (campaign.name, campaign.live) == ("old", None)
    [call] = store.list_llm_calls(campaign_id=cid)
    assert (call.model, call.cost_usd, call.prompt_tokens) == ("old-model", 0.5, 7)
    assert (call.messages, call.reply, call.prompt_hash) == (None, None, None)
    # New rows hold transcripts beside the old ones, and the way down keeps the old rows.
    store.record_llm_call(campaign_id=cid, call=_call())
    assert [c.prompt_hash for c in store.list_llm_calls(campaign_id=cid)] == [
        None,
        "0123456789abcdef",
    ]
    downgrade(engine, "0004")
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM llm_calls")).scalar() == 2
    engine.dispose()
