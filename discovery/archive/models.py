"""SQLAlchemy 2 table models of the archive (DESIGN.md section 6).

Table and column names are a public interface (outside tools read them): `campaigns(name, status,
spec)`, `candidates(campaign_id, name, source, fingerprint, status, reason, origin, parent_ids)`,
`evaluations(candidate_id, stage, task, seed, status, score, metrics, attempt)`, `llm_calls`,
`events`. The schema changes only through Alembic migrations (`migrations/versions`); a test checks
that these models and the migrations agree.

Two constraints keep an evaluation from being stored twice, enforced by the database itself:
(candidate_id, stage, task, seed, attempt) is unique, and among finished (DONE) evaluations
(candidate_id, stage, task, seed) is unique.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# JSONB on PostgreSQL (indexable, compact), plain JSON text elsewhere.
JSONType = JSON().with_variant(JSONB(), "postgresql")

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that is always timezone-aware UTC in Python.

    SQLite keeps no zone, so values come back naive; this puts UTC back on them.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("archive timestamps must be timezone-aware")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Campaign(Base):
    __tablename__ = "campaigns"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), index=True)
    spec: Mapped[dict[str, Any]] = mapped_column(JSONType)
    seed: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str | None] = mapped_column(Text)
    # Spent so far (wall_time_s, compute_hours, ...), summed over every run of the campaign.
    budget_used: Mapped[dict[str, float]] = mapped_column(
        JSONType, default=dict, server_default="{}"
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The lease of the one engine that owns the campaign (NULL: none). `lease_owner` is a random
    # id per engine run and the fencing token its writes check; a heartbeat older than the TTL
    # means the engine is gone (the campaign shows INTERRUPTED and may be taken over).
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_host: Mapped[str | None] = mapped_column(String(255))
    lease_pid: Mapped[int | None] = mapped_column(Integer)
    lease_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    lease_heartbeat: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # What its engine is doing now, for live views and /metrics: {"phase", "queue_depth",
    # "in_flight", "updated_at"}; written with the lease heartbeat, NULL when no engine runs it.
    live: Mapped[dict[str, Any] | None] = mapped_column(JSONType)


class Candidate(Base):
    __tablename__ = "candidates"
    __table_args__ = (
        Index("ix_candidates_campaign_fingerprint", "campaign_id", "fingerprint"),
        Index("ix_candidates_campaign_status", "campaign_id", "status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    thought: Mapped[str] = mapped_column(Text, default="")
    source: Mapped[str] = mapped_column(Text)
    # Who wrote it: baseline, evolve, llm, hf-local, user.
    origin: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))
    # Why it was rejected, marked duplicate or failed; the proposer reads this as feedback.
    reason: Mapped[str | None] = mapped_column(Text)
    canonical_code: Mapped[str | None] = mapped_column(Text)
    # The sandbox's rebuilt graph as JSON; trainers only ever run this, never `source`.
    graph: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    fingerprint: Mapped[str | None] = mapped_column(String(128))
    parent_ids: Mapped[list[int]] = mapped_column(JSONType, default=list)
    island: Mapped[int | None] = mapped_column(Integer)
    duplicate_of: Mapped[int | None] = mapped_column(
        ForeignKey("candidates.id", ondelete="SET NULL")
    )
    # The whole sandbox verdict (stage, timings, behaviour limits) for display and debugging.
    verdict: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    # Seed, proposer, model, prompt hash, package versions: what it takes to reproduce it.
    provenance: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Evaluation(Base):
    __tablename__ = "evaluations"
    __table_args__ = (
        UniqueConstraint(
            "candidate_id", "stage", "task", "seed", "attempt", name="uq_evaluations_once"
        ),
        # A retry gets a new attempt number, but only one attempt may ever finish DONE.
        Index(
            "uq_evaluations_done",
            "candidate_id",
            "stage",
            "task",
            "seed",
            unique=True,
            sqlite_where=text("status = 'DONE'"),
            postgresql_where=text("status = 'DONE'"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    candidate_id: Mapped[int] = mapped_column(
        ForeignKey("candidates.id", ondelete="CASCADE"), index=True
    )
    stage: Mapped[str] = mapped_column(String(32))
    task: Mapped[str] = mapped_column(String(64))
    seed: Mapped[int] = mapped_column(Integer)
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(16))
    # Relative to DPO under identical conditions; NULL unless status is DONE (no fake scores).
    score: Mapped[float | None] = mapped_column(Float)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    timings: Mapped[dict[str, float]] = mapped_column(JSONType, default=dict)
    # Training curves over steps (evaluator.results.training_curves), up to 4 x 200 numbers.
    # Deferred: a plain read of evaluations (the engine's, a leaderboard's) never loads them;
    # `list_evaluations(with_curves=True)` asks for them.
    curves: Mapped[dict[str, Any] | None] = mapped_column(
        JSONType, default=dict, server_default="{}", deferred=True
    )
    worker: Mapped[str | None] = mapped_column(String(200))
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class LLMCall(Base):
    __tablename__ = "llm_calls"
    # A candidate's transcript is found by its provenance's prompt hash within its campaign.
    __table_args__ = (Index("ix_llm_calls_campaign_prompt_hash", "campaign_id", "prompt_hash"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    campaign_id: Mapped[int | None] = mapped_column(
        ForeignKey("campaigns.id", ondelete="CASCADE"), index=True
    )
    purpose: Mapped[str] = mapped_column(String(32))  # propose, repair, judge
    model: Mapped[str] = mapped_column(String(200))
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    completion_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cost_usd: Mapped[float] = mapped_column(Float, default=0.0)
    latency_s: Mapped[float] = mapped_column(Float, default=0.0)
    error: Mapped[str | None] = mapped_column(Text)
    # The transcript: messages as sent ([{"role", "content"}]), the reply's text (NULL when the
    # request failed) and the messages' hash, which a candidate's provenance names.
    messages: Mapped[list[dict[str, str]] | None] = mapped_column(JSONType)
    reply: Mapped[str | None] = mapped_column(Text)
    prompt_hash: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Event(Base):
    __tablename__ = "events"
    __table_args__ = (Index("ix_events_campaign_id_id", "campaign_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
