"""A candidate's transcript: the LLM calls that wrote it, as the model saw and answered them.

`candidate_transcript(archive, candidate_id)` finds the call that wrote the candidate by the
prompt hash its provenance names (the hash of the messages sent, which the call's row keeps too),
with the failed tries of that same request before it, and the repair turns that followed it in the
same conversation: later calls of the campaign whose messages begin with that call's messages and
its reply. Oldest first, each with its model, tokens, cost, latency and error. A candidate no
model wrote (a baseline, the evolve search, a user's) gets no calls and a note saying who wrote it.

What it shows is what was stored: the messages as sent, which never hold a key (the key travels in
a request header that is not kept). It does not call a model or change the archive, and it
imports no torch, Ray or sandbox. NotFoundError (the archive's) for an unknown candidate.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from discovery.archive import Archive, CandidateRecord, LLMCallRecord

__all__ = ["Transcript", "TranscriptCall", "candidate_transcript"]

# Calls read after the writing one when looking for its repair turns. A conversation's repairs
# come straight after it (a proposer's round runs alone), each at most a few tries: this bounds
# the read, with room to spare for any repair_attempts and retries a spec may set.
_FOLLOWING_LIMIT = 64

_WRITERS = {
    "baseline": "a baseline from the library of published losses",
    "evolve": "written by the evolve proposer (the offline symbolic search)",
    "user": "submitted by a user",
}


@dataclass(frozen=True)
class TranscriptCall:
    """One request to a model, as sent and answered."""

    id: int
    purpose: str  # "propose", "repair" or "judge"
    model: str
    messages: list[dict[str, str]]  # [{"role", "content"}] as sent
    reply: str | None  # the reply's text; None for a request that failed
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    latency_s: float
    error: str | None
    created_at: datetime
    wrote_candidate: bool  # this reply held the candidate


@dataclass(frozen=True)
class Transcript:
    candidate_id: int
    origin: str
    model: str | None  # the model its provenance names; None for a candidate no model wrote
    prompt_hash: str | None
    calls: list[TranscriptCall]
    note: str | None = None  # why `calls` is empty, when it is


def candidate_transcript(archive: Archive, candidate_id: int) -> Transcript:
    """The calls that wrote candidate `candidate_id` and the repairs that followed; see the
    module docstring. NotFoundError for an unknown candidate."""
    candidate = archive.get_candidate(candidate_id)
    model = candidate.provenance.get("model")
    prompt_hash = candidate.provenance.get("prompt_hash")

    def empty(note: str) -> Transcript:
        return Transcript(candidate.id, candidate.origin, model, prompt_hash, [], note)

    if not prompt_hash:
        writer = _WRITERS.get(candidate.origin, f"written by the {candidate.origin} proposer")
        return empty(f"{writer}: no LLM call")
    same = archive.list_llm_calls(campaign_id=candidate.campaign_id, prompt_hash=prompt_hash)
    writer = _writer(same, candidate)
    if writer is None:
        return empty(
            f"no stored LLM call was sent with prompt {prompt_hash}: its calls were stored "
            "before lossforge kept transcripts"
        )
    # The failed tries of the same request (retries, adaptations) since the one before it.
    earlier = [c for c in same if c.id < writer.id and c.reply is not None]
    since = earlier[-1].id if earlier else 0
    tries = [c for c in same if since < c.id < writer.id]
    calls = [*tries, writer, *_repairs(archive, candidate.campaign_id, writer)]
    return Transcript(
        candidate.id,
        candidate.origin,
        model,
        prompt_hash,
        [_call(c, wrote=c.id == writer.id) for c in calls],
    )


def _writer(same: list[LLMCallRecord], candidate: CandidateRecord) -> LLMCallRecord | None:
    """The answered call with the candidate's prompt hash that came last before it was stored.

    One prompt can be sent twice (a round whose context did not change): the later reply, not
    the first, is the one the candidate came from."""
    answered = [c for c in same if c.reply is not None]
    before = [c for c in answered if c.created_at <= candidate.created_at]
    found = before or answered
    return found[-1] if found else None


def _repairs(archive: Archive, campaign_id: int, writer: LLMCallRecord) -> list[LLMCallRecord]:
    """The repair turns after `writer` in its conversation: they resend its messages and its
    reply, then ask for corrections."""
    prefix = [*(writer.messages or []), {"role": "assistant", "content": writer.reply or ""}]
    following = []
    for call in archive.list_llm_calls(
        campaign_id=campaign_id, after_id=writer.id, limit=_FOLLOWING_LIMIT
    ):
        if call.purpose != "repair" or (call.messages or [])[: len(prefix)] != prefix:
            break  # another conversation began
        following.append(call)
    return following


def _call(call: LLMCallRecord, *, wrote: bool) -> TranscriptCall:
    return TranscriptCall(
        id=call.id,
        purpose=call.purpose,
        model=call.model,
        messages=[{"role": m["role"], "content": m["content"]} for m in call.messages or []],
        reply=call.reply,
        prompt_tokens=call.prompt_tokens,
        completion_tokens=call.completion_tokens,
        cost_usd=call.cost_usd,
        latency_s=call.latency_s,
        error=call.error,
        created_at=call.created_at,
        wrote_candidate=wrote,
    )
