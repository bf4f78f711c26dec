"""Events counted by the database, and LLM calls stored from one typed record, on both backends."""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

import pytest
from sqlalchemy import event, insert

from discovery.archive import Archive, LeaseLostError, LLMCall, LLMCallRecord
from discovery.archive.models import Event
from evaluator import LLMCall as EvaluatorLLMCall
from tests.factories import make_campaign


def _insert_events(archive: Archive, campaign_id: int, kinds: list[str]) -> None:
    """Many events in one statement (appending 2,000 one by one would be 2,000 transactions)."""
    rows = [{"campaign_id": campaign_id, "kind": kind, "payload": {}} for kind in kinds]
    with archive.engine.begin() as db:
        db.execute(insert(Event), rows)


def test_count_events_counts_in_the_database_without_loading_rows(archive: Archive) -> None:
    campaign = make_campaign(archive)
    other = make_campaign(archive, name="other")
    assert archive.count_events(campaign_id=campaign.id) == 0
    _insert_events(
        archive, campaign.id, ["stage_done" if i % 4 == 0 else "proposal" for i in range(2000)]
    )
    archive.append_event(campaign_id=other.id, kind="started")

    statements: list[str] = []
    loaded: list[Any] = []

    def on_execute(*args: Any) -> None:
        statements.append(str(args[2]))

    def on_load(target: Any, context: Any) -> None:
        loaded.append(target)

    event.listen(archive.engine, "before_cursor_execute", on_execute)
    event.listen(Event, "load", on_load)
    try:
        every = archive.count_events(campaign_id=campaign.id)
        stages = archive.count_events(campaign_id=campaign.id, kind="stage_done")
    finally:
        event.remove(archive.engine, "before_cursor_execute", on_execute)
        event.remove(Event, "load", on_load)
    assert loaded == []  # no Event row was built
    on_events = [s.lower() for s in statements if "events" in s.lower()]
    assert len(on_events) == 2 and all("count(*)" in s for s in on_events)

    assert every == 2000 == len(archive.list_events(campaign_id=campaign.id, limit=10**9))
    listed = archive.list_events(campaign_id=campaign.id, kind="stage_done", limit=10**9)
    assert stages == 500 == len(listed)
    assert archive.count_events(campaign_id=other.id, kind="started") == 1
    assert archive.count_events(campaign_id=other.id, kind="proposal") == 0
    assert archive.count_events(campaign_id=other.id + 100) == 0  # unknown campaign: none


def _call(purpose: Literal["propose", "repair", "judge"], **fields: Any) -> LLMCall:
    """A failed request unless `fields` say otherwise (no tokens, no cost)."""
    zero = {"prompt_tokens": 0, "completion_tokens": 0, "cost_usd": 0.0, "latency_s": 0.1}
    return LLMCall(purpose=purpose, model="m", **{**zero, **fields})


def _fields(record: LLMCall | LLMCallRecord) -> dict[str, Any]:
    return {f.name: getattr(record, f.name) for f in dataclasses.fields(LLMCall)}


def test_a_typed_llm_call_is_stored_as_given(archive: Archive) -> None:
    campaign = make_campaign(archive)
    call = _call("judge", prompt_tokens=1200, completion_tokens=300, cost_usd=0.25, latency_s=2.5)
    typed = archive.record_llm_call(campaign_id=campaign.id, call=call)
    failed = archive.record_llm_call(campaign_id=None, call=_call("propose", error="HTTP 429"))
    assert _fields(typed) == _fields(call)
    assert (typed.campaign_id, failed.campaign_id) == (campaign.id, None)
    assert (failed.prompt_tokens, failed.cost_usd, failed.error) == (0, 0.0, "HTTP 429")
    assert archive.llm_cost(campaign_id=campaign.id) == pytest.approx(0.25)
    assert [c.model for c in archive.list_llm_calls(campaign_id=campaign.id)] == ["m"]

    # A fenced view refuses a typed call as any write, once its lease is lost.
    archive.acquire_lease(campaign.id, owner="old", host="h", pid=1)
    old = archive.fenced(campaign.id, "old")
    old.record_llm_call(campaign_id=campaign.id, call=_call("propose"))
    archive.acquire_lease(campaign.id, owner="new", host="h", pid=2, dead_owner="old")
    with pytest.raises(LeaseLostError):
        old.record_llm_call(campaign_id=campaign.id, call=_call("propose"))
    assert len(archive.list_llm_calls(campaign_id=campaign.id)) == 2
    assert old.count_events(campaign_id=campaign.id) == 0  # reads are not fenced


def test_the_typed_call_is_the_evaluators_and_has_the_stored_columns() -> None:
    # One record for a call, from proposers, the judge and the archive alike: not a look-alike.
    assert LLMCall is EvaluatorLLMCall
    # A column added to llm_calls must be added to the typed call too, or it is never written.
    stored = {f.name for f in dataclasses.fields(LLMCallRecord)}
    typed = {f.name for f in dataclasses.fields(LLMCall)}
    assert typed == stored - {"id", "campaign_id", "created_at"}
