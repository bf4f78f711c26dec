"""Plain-data views of archive rows and the status vocabularies stored in them.

The store returns these frozen records, never ORM objects, so callers cannot lazy-load across a
closed session or write to the database by assigning attributes. Statuses are `StrEnum`s stored as
their string values, so outside tools reading the tables see readable words.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

# `LLMCall`: one request to a model, as its caller reports it (a proposer, or the hf stage's judge)
# and `Archive.record_llm_call(call=...)` stores it. The evaluator defines it, since the judge's
# calls ride on its run results; the archive names it too, so its callers need not reach down.
from evaluator import LLMCall

# The candidates.graph column holds {GRAPH_JSON_KEY: <the rebuilt graph's JSON text>}; only the
# archive reads or writes that wrapper (`CandidateRecord.graph_json`, `update_candidate`).
GRAPH_JSON_KEY = "json"


class CampaignStatus(StrEnum):
    PENDING = "PENDING"  # stored, not started
    RUNNING = "RUNNING"
    PAUSED = "PAUSED"  # stopped on request; resumable
    CANCELLED = "CANCELLED"  # stopped on request; final
    FINISHED = "FINISHED"  # a budget was reached or the search ran out; final
    FAILED = "FAILED"  # stopped by an error; `reason` says which
    # Never stored: what a RUNNING campaign shows when its engine's lease has expired (the
    # process died, its host or database went away). Resumable, by any server or CLI.
    INTERRUPTED = "INTERRUPTED"


class CandidateStatus(StrEnum):
    PROPOSED = "PROPOSED"  # written by a proposer, not validated yet
    ACCEPTED = "ACCEPTED"  # passed the sandbox; waiting for or in evaluation
    REJECTED = "REJECTED"  # the sandbox refused it; `reason` says why
    DUPLICATE = "DUPLICATE"  # same behaviour as `duplicate_of`; never trained
    EVALUATED = "EVALUATED"  # at least one stage finished
    FAILED = "FAILED"  # every evaluation failed; `reason` says why
    # No score, through no fault of its own: a run it needs (its own, or DPO's run it is paired
    # with) was lost past the retry limit; `reason` names it, and a resume runs it again.
    UNSCORED = "UNSCORED"


class EvaluationStatus(StrEnum):
    PENDING = "PENDING"  # queued
    RUNNING = "RUNNING"  # handed to a worker
    DONE = "DONE"  # finished with a score
    NAN_LOSS = "NAN_LOSS"  # the loss or its gradient went non-finite
    DIVERGED = "DIVERGED"  # training ran away (e.g. KL exploded)
    TIMEOUT = "TIMEOUT"
    OOM = "OOM"
    ERROR = "ERROR"  # anything else; `reason` holds the traceback summary
    LOST = "LOST"  # its worker died or Ray failed (not the loss's doing); retried as a new attempt
    CANCELLED = "CANCELLED"  # the campaign stopped before it ran


@dataclass(frozen=True)
class Lease:
    """Who owns a campaign: one engine run, on `host` as process `pid`, since `since`."""

    owner: str  # a random id per engine run: the fencing token its writes check
    host: str
    pid: int
    since: datetime
    heartbeat: datetime  # renewed every few seconds while the engine runs
    expired: bool  # the heartbeat is older than the archive's TTL: the engine is gone

    def describe(self) -> str:
        """`host H, pid P, since 14:02:11 UTC` for messages."""
        return f"host {self.host}, pid {self.pid}, since {self.since:%Y-%m-%d %H:%M:%S} UTC"


@dataclass(frozen=True)
class NewEvent:
    """An event to write in the same transaction as the row it reports."""

    campaign_id: int
    kind: str
    payload: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CampaignRecord:
    id: int
    name: str
    status: CampaignStatus
    spec: dict[str, Any]
    seed: int
    reason: str | None
    budget_used: dict[str, float]
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    lease: Lease | None = None  # the owning engine's lease, live or expired; None: no owner
    # What its engine is doing now (`LIVE_KEYS`: phase, queue_depth, in_flight, updated_at as ISO
    # text), written with the lease heartbeat; None when no engine has written it.
    live: dict[str, Any] | None = None


@dataclass(frozen=True)
class CandidateRecord:
    id: int
    campaign_id: int
    name: str
    thought: str
    source: str
    origin: str
    status: CandidateStatus
    reason: str | None
    canonical_code: str | None
    graph: dict[str, Any] | None
    fingerprint: str | None
    parent_ids: list[int]
    island: int | None
    duplicate_of: int | None
    verdict: dict[str, Any] | None
    provenance: dict[str, Any]
    created_at: datetime

    @property
    def graph_json(self) -> str | None:
        """The sandbox's rebuilt graph as JSON text: what trainers run. None until accepted."""
        if self.graph is None:
            return None
        text = self.graph.get(GRAPH_JSON_KEY)
        if not isinstance(text, str):
            raise ValueError(
                f"candidate {self.id}'s stored graph holds no JSON text (keys: "
                f"{sorted(self.graph)}); store it with update_candidate(graph_json=...), or "
                "validate the candidate again"
            )
        return text


@dataclass(frozen=True)
class EvaluationRecord:
    id: int
    candidate_id: int
    stage: str
    task: str
    seed: int
    attempt: int
    status: EvaluationStatus
    score: float | None
    metrics: dict[str, Any]
    timings: dict[str, float]
    worker: str | None
    reason: str | None
    created_at: datetime
    finished_at: datetime | None
    # Training curves over steps ({"step": [...], "loss": [...], ...}, JSON null where a value
    # was not finite); read only when asked for (`list_evaluations(with_curves=True)`), {}
    # otherwise and for runs that recorded none.
    curves: dict[str, list[float | None]] = field(default_factory=dict)


@dataclass(frozen=True)
class LLMCallRecord:
    id: int
    campaign_id: int | None
    purpose: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    latency_s: float
    error: str | None
    created_at: datetime
    # The transcript (None for calls stored before it was kept, and for the judge's).
    messages: list[dict[str, str]] | None = None
    reply: str | None = None
    prompt_hash: str | None = None


@dataclass(frozen=True)
class EventRecord:
    id: int
    campaign_id: int
    kind: str
    payload: dict[str, Any] = field(default_factory=dict)
    created_at: datetime | None = None


@dataclass(frozen=True)
class CandidateSummary:
    """What a leaderboard or a genealogy needs of a candidate (no code, graph or verdict: cheap
    to read)."""

    id: int
    name: str
    origin: str
    status: CandidateStatus
    island: int | None = None  # the population island it was proposed for (None: baselines)
    parent_ids: list[int] = field(default_factory=list)
    duplicate_of: int | None = None  # the original, for a DUPLICATE
    created_at: datetime | None = None
    # A REJECTED candidate's reason code: the sandbox layer that refused it ("static", "child",
    # "battery", ...) or "unreadable" for a reply that held no candidate; None otherwise.
    rejection: str | None = None


@dataclass(frozen=True)
class ScoreRecord:
    """What a leaderboard needs of an evaluation (no metrics or timings)."""

    candidate_id: int
    stage: str
    task: str
    seed: int
    status: EvaluationStatus
    score: float | None


__all__ = [
    "GRAPH_JSON_KEY",
    "CampaignRecord",
    "CampaignStatus",
    "CandidateRecord",
    "CandidateStatus",
    "CandidateSummary",
    "EvaluationRecord",
    "EvaluationStatus",
    "EventRecord",
    "LLMCall",
    "LLMCallRecord",
    "Lease",
    "NewEvent",
    "ScoreRecord",
]
