"""What a campaign reports beside its results: LLM calls, events, and totals for monitoring.

LLM calls are stored one row per request (`record_llm_call`), since the dollar budget is read back
from them (`llm_cost`). Events are the stream a campaign's readers follow (`list_events`, which
SSE pages through) and count (`count_events`, a COUNT in the database, never a load). The totals
(`campaign_counts`, `candidate_counts`, `evaluation_durations`, `llm_totals`, `rejection_counts`)
sum the whole archive for the metrics endpoint. An LLM call keeps its transcript (messages sent,
reply, prompt hash); `list_llm_calls` finds a candidate's by its prompt hash.

It does not price calls, enforce budgets or decide which events to write: callers do.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from sqlalchemy import func, select

from discovery.archive.candidates import rejection_code
from discovery.archive.models import Campaign, Candidate, Evaluation, Event
from discovery.archive.models import LLMCall as LLMCallRow
from discovery.archive.records import CandidateStatus, EventRecord, LLMCall, LLMCallRecord
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

    def rejection_counts(self, *, campaign_id: int | None = None) -> dict[str, int]:
        """REJECTED candidates by reason code (the sandbox verdict's code; `candidate_format`
        for a reply that held no candidate), over the archive or one campaign."""
        code = rejection_code()
        query = select(code, func.count()).where(Candidate.status == CandidateStatus.REJECTED)
        if campaign_id is not None:
            query = query.where(Candidate.campaign_id == campaign_id)
        with self._read() as session:
            return {str(c): int(n) for c, n in session.execute(query.group_by(code))}

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
        if call.messages is not None:  # JSON keeps a list
            values["messages"] = [dict(m) for m in call.messages]
        with self._write() as session:
            row = LLMCallRow(campaign_id=campaign_id, **values)
            session.add(row)
            session.flush()
            return copy_record(LLMCallRecord, row)

    def list_llm_calls(
        self,
        *,
        campaign_id: int,
        prompt_hash: str | None = None,
        after_id: int = 0,
        limit: int | None = None,
    ) -> list[LLMCallRecord]:
        """A campaign's LLM calls, oldest first: those sent with `prompt_hash` if given (an
        indexed lookup), newer than call `after_id`, at most `limit`."""
        query = select(LLMCallRow).where(
            LLMCallRow.campaign_id == campaign_id, LLMCallRow.id > after_id
        )
        if prompt_hash is not None:
            query = query.where(LLMCallRow.prompt_hash == prompt_hash)
        query = query.order_by(LLMCallRow.id).limit(limit)
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
