"""Candidates and their evaluations: add, verdicts, lookups, counts, results and scores.

A candidate's rebuilt graph goes in and comes out as JSON text (`update_candidate(graph_json=...)`,
`CandidateRecord.graph_json`): the column's one-key wrapper `{"json": ...}` stays in the archive.
An evaluation is stored once per (candidate, stage, task, seed, attempt) and is final
once finished; the database's constraints refuse a second copy (DuplicateEvaluationError), so two
engines racing cannot both store one.

It does not validate code, choose what to evaluate or compute scores: it stores what it is given,
and refuses a score on anything but a DONE evaluation (a failure is never a fitness).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import ColumnElement, case, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import undefer

from discovery.archive.errors import DuplicateEvaluationError, EvaluationClosedError, NotFoundError
from discovery.archive.models import Candidate, Evaluation, utcnow
from discovery.archive.records import (
    GRAPH_JSON_KEY,
    CandidateRecord,
    CandidateStatus,
    CandidateSummary,
    EvaluationRecord,
    EvaluationStatus,
    NewEvent,
    ScoreRecord,
)
from discovery.archive.session import ArchiveCore, copy_record

_OPEN_EVALUATION_STATUSES = {EvaluationStatus.PENDING, EvaluationStatus.RUNNING}
# The rejection code of a candidate rejected with no verdict: a model's reply that held no
# readable candidate (the sandbox's own code for that fault).
UNREADABLE_CODE = "candidate_format"


def _candidate(row: Candidate) -> CandidateRecord:
    record = copy_record(CandidateRecord, row)
    return dataclasses.replace(
        record, status=CandidateStatus(row.status), parent_ids=list(row.parent_ids or [])
    )


# Every EvaluationRecord field but `curves`, which is read only when asked for (deferred).
_LEAN_EVALUATION = [f.name for f in dataclasses.fields(EvaluationRecord) if f.name != "curves"]


def _evaluation(row: Evaluation, *, with_curves: bool = False) -> EvaluationRecord:
    values = {name: getattr(row, name) for name in _LEAN_EVALUATION}
    values["status"] = EvaluationStatus(row.status)
    if with_curves:  # rows stored before migration 0004 hold {} (or NULL, if written raw)
        values["curves"] = dict(row.curves or {})
    return EvaluationRecord(**values)


def rejection_code() -> ColumnElement[str]:
    """A rejected candidate's reason code, computed in SQL: the sandbox verdict's `code` field
    (RejectionCode: "value_read", "forbidden_import", ...), or `UNREADABLE_CODE` for a candidate
    rejected without a verdict (a reply that held no code)."""
    return func.coalesce(Candidate.verdict["code"].as_string(), UNREADABLE_CODE)


def _stored_curves(curves: dict[str, list[float | None]] | None) -> dict[str, list[Any]]:
    """The curves column's value: non-finite numbers as None (JSON null; PostgreSQL's JSONB
    refuses NaN, and SQLite's JSON would keep a NaN no JSON reader accepts)."""
    return {
        name: [v if v is None or math.isfinite(v) else None for v in values]
        for name, values in (curves or {}).items()
    }


def _check_score(status: EvaluationStatus, score: float | None) -> None:
    # A failed evaluation carries a reason, never a number that selection could mistake for fitness.
    if status != EvaluationStatus.DONE and score is not None:
        raise ValueError(f"only DONE evaluations carry a score (got status {status})")


def _stored_graph(graph_json: str | None) -> dict[str, Any] | None:
    """The graph column's value for `update_candidate` (None: keep the stored one)."""
    if graph_json is None:
        return None
    if not isinstance(graph_json, str):
        raise TypeError(
            f"graph_json is the rebuilt graph's JSON text, not a {type(graph_json).__name__}"
        )
    return {GRAPH_JSON_KEY: graph_json}


class CandidateArchive(ArchiveCore):
    """Candidates and evaluations (a part of `Archive`; see store.py)."""

    def add_candidate(
        self,
        *,
        campaign_id: int,
        name: str,
        source: str,
        origin: str,
        thought: str = "",
        status: CandidateStatus = CandidateStatus.PROPOSED,
        reason: str | None = None,
        parent_ids: Sequence[int] = (),
        island: int | None = None,
        provenance: dict[str, Any] | None = None,
    ) -> CandidateRecord:
        with self._write() as session:
            row = Candidate(
                campaign_id=campaign_id,
                name=name,
                source=source,
                origin=origin,
                thought=thought,
                status=status,
                reason=reason,
                parent_ids=list(parent_ids),
                island=island,
                provenance=provenance or {},
            )
            session.add(row)
            try:
                session.flush()
            except IntegrityError as exc:
                raise NotFoundError(f"no campaign with id {campaign_id}") from exc
            return _candidate(row)

    def update_candidate(
        self,
        candidate_id: int,
        *,
        status: CandidateStatus,
        reason: str | None = None,
        canonical_code: str | None = None,
        graph_json: str | None = None,
        fingerprint: str | None = None,
        verdict: dict[str, Any] | None = None,
        duplicate_of: int | None = None,
        event: NewEvent | None = None,
    ) -> CandidateRecord:
        """Record a verdict or a new status; fields left as None keep their stored value.

        `graph_json` is the sandbox's rebuilt graph as JSON text (read back as
        `CandidateRecord.graph_json`).
        """
        stored_graph = _stored_graph(graph_json)
        with self._write() as session:
            self._add_event(session, event)
            row = session.get(Candidate, candidate_id)
            if row is None:
                raise NotFoundError(f"no candidate with id {candidate_id}")
            row.status = status
            row.reason = reason
            updates = {
                "canonical_code": canonical_code,
                "graph": stored_graph,
                "fingerprint": fingerprint,
                "verdict": verdict,
                "duplicate_of": duplicate_of,
            }
            for column, value in updates.items():
                if value is not None:
                    setattr(row, column, value)
            session.flush()
            return _candidate(row)

    def get_candidate(self, candidate_id: int) -> CandidateRecord:
        with self._read() as session:
            row = session.get(Candidate, candidate_id)
            if row is None:
                raise NotFoundError(f"no candidate with id {candidate_id}")
            return _candidate(row)

    def get_candidates(self, candidate_ids: Iterable[int]) -> dict[int, CandidateRecord]:
        """The candidates of these ids that exist, in one query, by id."""
        ids = sorted(set(candidate_ids))
        if not ids:
            return {}
        with self._read() as session:
            rows = session.scalars(select(Candidate).where(Candidate.id.in_(ids)))
            return {row.id: _candidate(row) for row in rows}

    def list_candidates(
        self, *, campaign_id: int, status: CandidateStatus | None = None
    ) -> list[CandidateRecord]:
        query = select(Candidate).where(Candidate.campaign_id == campaign_id)
        if status is not None:
            query = query.where(Candidate.status == status)
        with self._read() as session:
            return [_candidate(row) for row in session.scalars(query.order_by(Candidate.id))]

    def candidate_summaries(self, *, campaign_id: int) -> list[CandidateSummary]:
        """A campaign's candidates, id order, reading only the columns a leaderboard or a
        genealogy shows. A rejection's code is read out of the verdict by the database (one JSON
        field, never the verdict itself)."""
        query = (
            select(
                Candidate.id,
                Candidate.name,
                Candidate.origin,
                Candidate.status,
                Candidate.island,
                Candidate.parent_ids,
                Candidate.duplicate_of,
                Candidate.created_at,
                # Only a rejected row's verdict is opened: an accepted one holds its graph.
                case((Candidate.status == CandidateStatus.REJECTED, rejection_code())),
            )
            .where(Candidate.campaign_id == campaign_id)
            .order_by(Candidate.id)
        )
        with self._read() as session:
            return [
                CandidateSummary(
                    id=i,
                    name=n,
                    origin=o,
                    status=CandidateStatus(st),
                    island=isl,
                    parent_ids=list(parents or []),
                    duplicate_of=dup,
                    created_at=created,
                    rejection=code,
                )
                for i, n, o, st, isl, parents, dup, created, code in session.execute(query)
            ]

    def campaign_scores(self, *, campaign_id: int) -> list[ScoreRecord]:
        """A campaign's evaluations, id order, without their metrics and timings."""
        query = (
            select(
                Evaluation.candidate_id,
                Evaluation.stage,
                Evaluation.task,
                Evaluation.seed,
                Evaluation.status,
                Evaluation.score,
            )
            .join(Candidate)
            .where(Candidate.campaign_id == campaign_id)
            .order_by(Evaluation.id)
        )
        with self._read() as session:
            return [
                ScoreRecord(
                    candidate_id=c, stage=st, task=t, seed=sd, status=EvaluationStatus(s), score=sc
                )
                for c, st, t, sd, s, sc in session.execute(query)
            ]

    def find_by_fingerprint(self, *, campaign_id: int, fingerprint: str) -> CandidateRecord | None:
        """The first non-duplicate candidate of the campaign with this behavioural fingerprint."""
        return self._first_original(campaign_id, Candidate.fingerprint == fingerprint)

    def find_by_canonical_code(
        self, *, campaign_id: int, canonical_code: str
    ) -> CandidateRecord | None:
        """The first non-duplicate candidate of the campaign with this normalized source."""
        return self._first_original(campaign_id, Candidate.canonical_code == canonical_code)

    def _first_original(self, campaign_id: int, match: Any) -> CandidateRecord | None:
        query = (
            select(Candidate)
            .where(
                Candidate.campaign_id == campaign_id,
                match,
                Candidate.status != CandidateStatus.DUPLICATE,
            )
            .order_by(Candidate.id)
            .limit(1)
        )
        with self._read() as session:
            row = session.scalars(query).first()
            return _candidate(row) if row is not None else None

    def count_candidates(self, *, campaign_id: int) -> dict[CandidateStatus, int]:
        query = (
            select(Candidate.status, func.count())
            .where(Candidate.campaign_id == campaign_id)
            .group_by(Candidate.status)
        )
        with self._read() as session:
            return {CandidateStatus(status): n for status, n in session.execute(query)}

    def count_candidates_by_campaign(self) -> dict[int, dict[CandidateStatus, int]]:
        """`count_candidates` of every campaign, in one query (for a list of campaigns)."""
        query = select(Candidate.campaign_id, Candidate.status, func.count()).group_by(
            Candidate.campaign_id, Candidate.status
        )
        counts: dict[int, dict[CandidateStatus, int]] = {}
        with self._read() as session:
            for campaign_id, status, n in session.execute(query):
                counts.setdefault(campaign_id, {})[CandidateStatus(status)] = n
        return counts

    def count_baselines_by_campaign(self, campaign_id: int | None = None) -> dict[int, int]:
        """Baseline candidates of every campaign (or of one), in one query: a list of campaigns
        shows proposed candidates (what the candidates limit counts) apart from them."""
        query = select(Candidate.campaign_id, func.count()).where(Candidate.origin == "baseline")
        if campaign_id is not None:
            query = query.where(Candidate.campaign_id == campaign_id)
        query = query.group_by(Candidate.campaign_id)
        with self._read() as session:
            return {campaign_id: n for campaign_id, n in session.execute(query)}

    # -- evaluations -------------------------------------------------------------------------

    def add_evaluation(
        self,
        *,
        candidate_id: int,
        stage: str,
        task: str,
        seed: int,
        attempt: int = 0,
        status: EvaluationStatus = EvaluationStatus.PENDING,
        score: float | None = None,
        metrics: dict[str, Any] | None = None,
        timings: dict[str, float] | None = None,
        worker: str | None = None,
        reason: str | None = None,
        curves: dict[str, list[float | None]] | None = None,
    ) -> EvaluationRecord:
        """Store one evaluation; DuplicateEvaluationError if the database holds it already."""
        _check_score(status, score)
        with self._write() as session:
            row = Evaluation(
                candidate_id=candidate_id,
                stage=stage,
                task=task,
                seed=seed,
                attempt=attempt,
                status=status,
                score=score,
                metrics=metrics or {},
                timings=timings or {},
                curves=_stored_curves(curves),
                worker=worker,
                reason=reason,
                finished_at=None if status in _OPEN_EVALUATION_STATUSES else utcnow(),
            )
            session.add(row)
            try:
                session.flush()
            except IntegrityError as exc:
                raise DuplicateEvaluationError(
                    f"evaluation of candidate {candidate_id} at stage={stage!r} task={task!r} "
                    f"seed={seed} attempt={attempt} is already stored (or already DONE); "
                    "retry with a new attempt number, or read the stored result"
                ) from exc
            return _evaluation(row)

    def finish_evaluation(
        self,
        evaluation_id: int,
        *,
        status: EvaluationStatus,
        score: float | None = None,
        metrics: dict[str, Any] | None = None,
        timings: dict[str, float] | None = None,
        worker: str | None = None,
        reason: str | None = None,
        event: NewEvent | None = None,
        curves: dict[str, list[float | None]] | None = None,
    ) -> EvaluationRecord:
        """Record the outcome of a PENDING or RUNNING evaluation (with `event`, if given);
        `curves` are the run's training curves (`RunResult.curves`), stored as given.

        A finished evaluation is final: EvaluationClosedError if the row is finished already.
        """
        _check_score(status, score)
        with self._write() as session:
            # Locked for the check (PostgreSQL); SQLite's write lock is already held.
            row = session.get(Evaluation, evaluation_id, with_for_update=True)
            if row is None:
                raise NotFoundError(f"no evaluation with id {evaluation_id}")
            if EvaluationStatus(row.status) not in _OPEN_EVALUATION_STATUSES:
                raise EvaluationClosedError(
                    f"evaluation {evaluation_id} (candidate {row.candidate_id} "
                    f"{row.stage}/{row.task} seed={row.seed}) is already {row.status}; a finished "
                    "evaluation is never overwritten: store a new attempt instead"
                )
            self._add_event(session, event)
            row.status = status
            row.score = score
            row.metrics = metrics or {}
            row.timings = timings or {}
            row.curves = _stored_curves(curves)
            row.worker = worker or row.worker
            row.reason = reason
            row.finished_at = None if status in _OPEN_EVALUATION_STATUSES else utcnow()
            # Read the key now: after a failed flush the row cannot be loaded any more.
            key = f"candidate {row.candidate_id} {row.stage}/{row.task} seed={row.seed}"
            try:
                session.flush()
            except IntegrityError as exc:
                raise DuplicateEvaluationError(
                    f"{key} already has a DONE evaluation; this result is not stored"
                ) from exc
            return _evaluation(row)

    def set_score(
        self, evaluation_id: int, score: float, *, event: NewEvent | None = None
    ) -> EvaluationRecord:
        """Give a DONE evaluation its score once the baseline it is measured against is known."""
        with self._write() as session:
            self._add_event(session, event)
            row = session.get(Evaluation, evaluation_id)
            if row is None:
                raise NotFoundError(f"no evaluation with id {evaluation_id}")
            if row.status != EvaluationStatus.DONE:
                raise ValueError(f"evaluation {evaluation_id} is {row.status}; only DONE is scored")
            row.score = score
            session.flush()
            return _evaluation(row)

    def list_evaluations(
        self,
        *,
        candidate_id: int | None = None,
        campaign_id: int | None = None,
        status: EvaluationStatus | None = None,
        with_curves: bool = False,
    ) -> list[EvaluationRecord]:
        """Evaluations, id order; their training curves only `with_curves` (they are the bulk of
        a row, and most readers never look at them)."""
        query = select(Evaluation)
        if with_curves:
            query = query.options(undefer(Evaluation.curves))
        if candidate_id is not None:
            query = query.where(Evaluation.candidate_id == candidate_id)
        if campaign_id is not None:
            query = query.join(Candidate).where(Candidate.campaign_id == campaign_id)
        if status is not None:
            query = query.where(Evaluation.status == status)
        with self._read() as session:
            rows = session.scalars(query.order_by(Evaluation.id))
            return [_evaluation(row, with_curves=with_curves) for row in rows]
