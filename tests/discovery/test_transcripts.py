"""A candidate's transcript (discovery.service.transcripts) on an archive filled through its API,
on both backends: the call that wrote it (after a failed try of the same request), the repair
turn that followed in its conversation and not the next round's call, a repair's own transcript,
a note for a candidate no model wrote, and NotFoundError for an unknown one."""

from __future__ import annotations

from typing import Any

import pytest

from discovery.archive import Archive, LLMCall, NotFoundError
from discovery.proposers.llm.calls import prompt_hash
from discovery.service.transcripts import candidate_transcript
from tests.factories import DPO_SOURCE, make_campaign

ROUND_1 = (
    {"role": "system", "content": "You write preference losses."},
    {"role": "user", "content": "Write 2 losses; parents: dpo."},
)
REPLY_1 = '{"candidates": [{"name": "soft", "code": "..."}, {"name": "reads", "code": "..."}]}'
REPAIR = (
    *ROUND_1,
    {"role": "assistant", "content": REPLY_1},
    {"role": "user", "content": "'reads' was rejected: .item() reads a value. Fix it."},
)
REPLY_2 = '{"candidates": [{"name": "reads", "code": "fixed"}]}'
ROUND_2 = (ROUND_1[0], {"role": "user", "content": "Write 2 losses; parents: soft."})


def _record(archive: Archive, campaign_id: int, purpose: str, sent: Any, **fields: Any) -> int:
    call = LLMCall(
        purpose=purpose,  # type: ignore[arg-type]
        model="gpt-test",
        prompt_tokens=fields.pop("prompt_tokens", 40),
        completion_tokens=fields.pop("completion_tokens", 20),
        cost_usd=fields.pop("cost_usd", 0.002),
        latency_s=0.3,
        messages=tuple(sent),
        prompt_hash=prompt_hash(sent),
        **fields,
    )
    return archive.record_llm_call(campaign_id=campaign_id, call=call).id


def _candidate(archive: Archive, campaign_id: int, name: str, sent: Any) -> int:
    provenance = {"proposer": "llm", "model": "gpt-test", "prompt_hash": prompt_hash(sent)}
    return archive.add_candidate(
        campaign_id=campaign_id, name=name, source=DPO_SOURCE, origin="llm", provenance=provenance
    ).id


def test_transcripts_hold_the_writing_call_and_its_repair_turns(archive: Archive) -> None:
    campaign = make_campaign(archive)
    other = make_campaign(archive, name="other")
    # Round 1: a failed try, the answer, candidates; a repair turn and its candidate.
    failed = _record(
        archive,
        campaign.id,
        "propose",
        ROUND_1,
        error="HTTP 500 after retry",
        prompt_tokens=0,
        completion_tokens=0,
        cost_usd=0.0,
    )
    wrote = _record(archive, campaign.id, "propose", ROUND_1, reply=REPLY_1)
    soft = _candidate(archive, campaign.id, "soft", ROUND_1)
    repair = _record(archive, campaign.id, "repair", REPAIR, reply=REPLY_2)
    fixed = _candidate(archive, campaign.id, "reads", REPAIR)
    # Round 2 of this campaign, and the same prompt sent in another campaign: neither belongs.
    _record(archive, campaign.id, "propose", ROUND_2, reply=REPLY_1)
    _record(archive, other.id, "propose", ROUND_1, reply=REPLY_1)

    transcript = candidate_transcript(archive, soft)
    assert (transcript.candidate_id, transcript.origin, transcript.model) == (
        soft,
        "llm",
        "gpt-test",
    )
    assert transcript.prompt_hash == prompt_hash(ROUND_1) and transcript.note is None
    assert [c.id for c in transcript.calls] == [failed, wrote, repair]
    assert [c.wrote_candidate for c in transcript.calls] == [False, True, False]
    first, answer, turn = transcript.calls
    assert (first.error, first.reply, first.messages) == ("HTTP 500 after retry", None, [*ROUND_1])
    assert (answer.purpose, answer.messages, answer.reply) == ("propose", [*ROUND_1], REPLY_1)
    assert (answer.model, answer.prompt_tokens, answer.completion_tokens) == ("gpt-test", 40, 20)
    assert answer.cost_usd == pytest.approx(0.002) and answer.latency_s == pytest.approx(0.3)
    assert answer.created_at.tzinfo is not None
    assert (turn.purpose, turn.reply, turn.messages[-1]) == ("repair", REPLY_2, REPAIR[-1])

    # The repaired candidate was written by the repair call, whose messages hold the whole
    # conversation so far.
    repaired = candidate_transcript(archive, fixed)
    assert [(c.id, c.wrote_candidate) for c in repaired.calls] == [(repair, True)]
    assert repaired.calls[0].messages == [*REPAIR]


def test_a_candidate_no_model_wrote_says_who_did(archive: Archive) -> None:
    campaign = make_campaign(archive)
    evolved = archive.add_candidate(
        campaign_id=campaign.id,
        name="evo-1",
        source=DPO_SOURCE,
        origin="evolve",
        provenance={"proposer": "evolve", "model": None, "prompt_hash": None},
    )
    baseline = archive.add_candidate(
        campaign_id=campaign.id, name="dpo", source=DPO_SOURCE, origin="baseline"
    )
    # An LLM candidate whose call predates transcripts: named by hash, but no row has it.
    old = _candidate(archive, campaign.id, "old", ROUND_2)

    evolve_t = candidate_transcript(archive, evolved.id)
    assert evolve_t.calls == [] and evolve_t.model is None
    assert (
        evolve_t.note == "written by the evolve proposer (the offline symbolic search): no LLM call"
    )
    assert "baseline" in (candidate_transcript(archive, baseline.id).note or "")
    old_t = candidate_transcript(archive, old)
    assert old_t.calls == [] and "before lossforge kept transcripts" in (old_t.note or "")
    with pytest.raises(NotFoundError, match="no candidate with id"):
        candidate_transcript(archive, old + 1000)
