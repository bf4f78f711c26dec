"""What a campaign reports beside its results: LLM calls, events, and totals for monitoring.

LLM calls are stored one row per request (`record_llm_call`), since the dollar budget is read back
from them (`llm_cost`). Events are the stream a campaign's readers follow (`list_events`, which
SSE pages through) and count (`count_events`, a COUNT in the database, never a load). The totals
(`campaign_counts`, `candidate_counts`, `evaluation_durations`, `llm_totals`) sum the whole
archive for the metrics endpoint.

It does not price calls, enforce budgets or decide which events to write: callers do.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from sqlalchemy import func, select

from discovery.archive.models import Campaign, Candidate, Evaluation, Event
from discovery.archive.models import LLMCall as LLMCallRow
from discovery.archive.records import EventRecord, LLMCall, LLMCallRecord
from discovery.archive.session import ArchiveCore, copy_record


class TelemetryArchive(ArchiveCore):
    """LLM calls, events and monitoring totals (a part of `Archive`; see store.py)."""

    # -- totals for monitoring ---------------------------------------------------------------

    def campaign_counts(self) -> dict[str, int]:
        """Campaigns by status, over the whole archive."""
        query = select(Campaign.status, func.count()).group_by(Campaign.status)
        with self._read() as session:
            return {str(status): n for status, n in session.execute(query)}

    def candidate_counts(self) -> dict[tuple[str, str], int]:
        """Candidates by (origin, status), over the whole archive."""
        query = select(Candidate.origin, Candidate.status, func.count()).group_by(
            Candidate.origin, Candidate.status
        )
        with self._read() as session:
            return {(str(o), str(s)): n for o, s, n in session.execute(query)}

    def evaluation_durations(self) -> list[tuple[str, str, float]]:
        """(stage, status, seconds) of every finished evaluation that recorded its run time."""
        query = select(Evaluation.stage, Evaluation.status, Evaluation.timings).where(
            Evaluation.finished_at.is_not(None)
        )
        with self._read() as session:
            rows = session.execute(query)
            return [
                (str(stage), str(status), float(timings["seconds"]))
                for stage, status, timings in rows
                if isinstance(timings, dict) and isinstance(timings.get("seconds"), int | float)
            ]

    def llm_totals(self) -> list[dict[str, Any]]:
        """LLM calls summed by (model, purpose, failed): calls, tokens, dollars."""
        failed = LLMCallRow.error.is_not(None)
        query = select(
            LLMCallRow.model,
            LLMCallRow.purpose,
            failed,
            func.count(),
            func.coalesce(func.sum(LLMCallRow.prompt_tokens), 0),
            func.coalesce(func.sum(LLMCallRow.completion_tokens), 0),
            func.coalesce(func.sum(LLMCallRow.cost_usd), 0.0),
        ).group_by(LLMCallRow.model, LLMCallRow.purpose, failed)
        with self._read() as session:
            return [
                {
                    "model": model,
                    "purpose": purpose,
                    "failed": bool(is_failed),
                    "calls": int(calls),
                    "prompt_tokens": int(prompt),
                    "completion_tokens": int(completion),
                    "cost_usd": float(cost),
                }
                for model, purpose, is_failed, calls, prompt, completion, cost in session.execute(
                    query
                )
            ]

    # -- LLM calls ---------------------------------------------------------------------------

    def record_llm_call(self, *, campaign_id: int | None, call: LLMCall) -> LLMCallRecord:
        """Store one LLM request of a campaign (None: of no campaign)."""
        values = dataclasses.asdict(call)
        with self._write() as session:
            row = LLMCallRow(campaign_id=campaign_id, **values)
            session.add(row)
            session.flush()
            return copy_record(LLMCallRecord, row)

    def list_llm_calls(self, *, campaign_id: int) -> list[LLMCallRecord]:
        """A campaign's LLM calls, oldest first."""
        query = (
            select(LLMCallRow).where(LLMCallRow.campaign_id == campaign_id).order_by(LLMCallRow.id)
        )
        with self._read() as session:
            return [copy_record(LLMCallRecord, row) for row in session.scalars(query)]

    def llm_cost(self, *, campaign_id: int) -> float:
        """Dollars spent on LLM calls by a campaign so far."""
        query = select(func.coalesce(func.sum(LLMCallRow.cost_usd), 0.0)).where(
            LLMCallRow.campaign_id == campaign_id
        )
        with self._read() as session:
            return float(session.scalar(query) or 0.0)

    # -- events ------------------------------------------------------------------------------

    def append_event(
        self, *, campaign_id: int, kind: str, payload: dict[str, Any] | None = None
    ) -> EventRecord:
        with self._write() as session:
            row = Event(campaign_id=campaign_id, kind=kind, payload=payload or {})
            session.add(row)
            session.flush()
            return copy_record(EventRecord, row)

    def list_events(
        self, *, campaign_id: int, after_id: int = 0, limit: int = 1000, kind: str | None = None
    ) -> list[EventRecord]:
        """Events of a campaign newer than `after_id`, oldest first (the stream SSE follows)."""
        query = select(Event).where(Event.campaign_id == campaign_id, Event.id > after_id)
        if kind is not None:
            query = query.where(Event.kind == kind)
        query = query.order_by(Event.id).limit(limit)
        with self._read() as session:
            return [copy_record(EventRecord, row) for row in session.scalars(query)]

    def count_events(self, *, campaign_id: int, kind: str | None = None) -> int:
        """How many events the campaign has (of `kind`, if given), counted by the database."""
        query = select(func.count()).select_from(Event).where(Event.campaign_id == campaign_id)
        if kind is not None:
            query = query.where(Event.kind == kind)
        with self._read() as session:
            return int(session.scalar(query) or 0)
