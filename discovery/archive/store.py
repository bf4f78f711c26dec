"""The archive's store: typed functions over the tables, the only place that talks to the database.

Every method opens its own short transaction, so one `Archive` can be shared by threads, and
several processes can share one SQLite file (see `db`). Writes that must not happen twice are
refused by database constraints, not by Python checks that would race. Methods return frozen
records (`records`), never ORM rows.

Ownership: a campaign has at most one engine, holding its lease (`acquire_lease`, renewed by
`renew_lease`). The engine writes through `fenced(campaign_id, owner)`, a view of the store whose
every write transaction first checks, under a row lock, that the lease is still its own, so an
engine that lost its lease cannot write one more row (LeaseLostError). A RUNNING campaign whose
lease is free or expired reads as INTERRUPTED. A row and the event that reports it are written in
one transaction (`event=`). `retrying(seconds)` rides out database outages (retry.py).

It does not validate campaign specs, choose what to evaluate or compute scores: it stores what it is
given.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import inspect
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Engine, and_, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from discovery.archive import retry, text
from discovery.archive.db import WRITE_OPTION, create_archive_engine
from discovery.archive.errors import (
    DuplicateEvaluationError,
    EvaluationClosedError,
    LeaseHeldError,
    LeaseLostError,
    NotFoundError,
)
from discovery.archive.migrate import upgrade
from discovery.archive.models import Campaign, Candidate, Evaluation, Event, LLMCall, utcnow
from discovery.archive.records import (
    CampaignRecord,
    CampaignStatus,
    CandidateRecord,
    CandidateStatus,
    CandidateSummary,
    EvaluationRecord,
    EvaluationStatus,
    EventRecord,
    Lease,
    LLMCallRecord,
    NewEvent,
    ScoreRecord,
)

R = TypeVar("R")
F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_LEASE_TTL_S = 30.0  # a lease whose heartbeat is older than this is expired

_FINAL_CAMPAIGN_STATUSES = {
    CampaignStatus.CANCELLED,
    CampaignStatus.FINISHED,
    CampaignStatus.FAILED,
}


def _record(cls: type[R], row: Any) -> R:
    """Copy a row's columns into the record class of the same shape."""
    values = {f.name: getattr(row, f.name) for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    return cls(**values)


def _lease(row: Campaign, cutoff: datetime) -> Lease | None:
    if row.lease_owner is None or row.lease_since is None or row.lease_heartbeat is None:
        return None
    return Lease(
        owner=row.lease_owner,
        host=row.lease_host or "?",
        pid=row.lease_pid or 0,
        since=row.lease_since,
        heartbeat=row.lease_heartbeat,
        expired=row.lease_heartbeat < cutoff,
    )


def _campaign(row: Campaign, cutoff: datetime) -> CampaignRecord:
    lease = _lease(row, cutoff)
    status = CampaignStatus(row.status)
    if status is CampaignStatus.RUNNING and (lease is None or lease.expired):
        status = CampaignStatus.INTERRUPTED  # its engine is gone: shown, never stored
    values = {
        f.name: getattr(row, f.name)
        for f in dataclasses.fields(CampaignRecord)
        if f.name != "lease"
    }
    return CampaignRecord(**{**values, "status": status, "lease": lease})


def _retried(fn: F) -> F:
    """Run a store method under the archive's retry window (`Archive.retrying`)."""

    @functools.wraps(fn)
    def call(self: Archive, *args: Any, **kwargs: Any) -> Any:
        if self.retry_s <= 0:
            return fn(self, *args, **kwargs)
        where = self.engine.url.render_as_string(hide_password=True)
        return retry.call(lambda: fn(self, *args, **kwargs), seconds=self.retry_s, where=where)

    return call  # type: ignore[return-value]


def _with_retries(cls: type[R]) -> type[R]:
    for name, fn in list(vars(cls).items()):
        if not name.startswith("_") and inspect.isfunction(fn) and name not in _PURE:
            setattr(cls, name, _retried(fn))
    return cls


_PURE = {"fenced", "retrying"}  # build views of the store; no database call to retry


def _candidate(row: Candidate) -> CandidateRecord:
    record = _record(CandidateRecord, row)
    return dataclasses.replace(
        record, status=CandidateStatus(row.status), parent_ids=list(row.parent_ids or [])
    )


def _evaluation(row: Evaluation) -> EvaluationRecord:
    return dataclasses.replace(_record(EvaluationRecord, row), status=EvaluationStatus(row.status))


@_with_retries
class Archive:
    """Typed access to one archive database.

    `lease_ttl_s`: how old a lease's heartbeat may be before it is expired (readers and engines
    must agree on it: it comes from the settings).
    """

    def __init__(self, engine: Engine, *, lease_ttl_s: float = DEFAULT_LEASE_TTL_S) -> None:
        self.engine = engine
        self.lease_ttl_s = lease_ttl_s
        self.retry_s = 0.0  # see `retrying`
        self._fence: tuple[int, str] | None = None  # see `fenced`
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        text.install(self._sessions)  # NUL characters, which PostgreSQL refuses

    def fenced(self, campaign_id: int, owner: str) -> Archive:
        """This store, whose every write first checks that `owner` still holds the campaign's
        lease, in the same transaction (LeaseLostError otherwise: nothing is written)."""
        view = copy.copy(self)
        view._fence = (campaign_id, owner)
        return view

    def retrying(self, seconds: float) -> Archive:
        """This store, re-running calls that fail on a transient database error for up to
        `seconds` (then DatabaseUnavailableError)."""
        view = copy.copy(self)
        view.retry_s = seconds
        return view

    def _cutoff(self) -> datetime:
        return utcnow() - timedelta(seconds=self.lease_ttl_s)

    def _lease_dead(self, cutoff: datetime) -> ColumnElement[bool]:
        return or_(Campaign.lease_owner.is_(None), Campaign.lease_heartbeat < cutoff)

    @contextmanager
    def _read(self) -> Iterator[Session]:
        with self._sessions() as session:
            yield session

    @contextmanager
    def _write(self) -> Iterator[Session]:
        with self._sessions() as session:
            # Asks SQLite for the write lock when the transaction begins (see `db`).
            session.connection(execution_options={WRITE_OPTION: True})
            if self._fence is not None:
                self._check_fence(session, *self._fence)
            yield session
            session.commit()

    def _check_fence(self, session: Session, campaign_id: int, owner: str) -> None:
        # FOR SHARE on PostgreSQL: a takeover (an UPDATE of this row) waits until this write
        # commits, and then finds the lease still held. SQLite's write lock serializes all writes.
        query = select(Campaign.lease_owner).where(Campaign.id == campaign_id)
        if session.scalar(query.with_for_update(read=True)) == owner:
            return
        row = session.get(Campaign, campaign_id)
        lease = _lease(row, self._cutoff()) if row is not None else None
        now = f"now owned by another engine ({lease.describe()})" if lease else "no longer owned"
        raise LeaseLostError(
            f"campaign {campaign_id} is {now}: this engine lost its lease and stops without "
            "writing anything more"
        )

    @staticmethod
    def _add_event(session: Session, event: NewEvent | None) -> None:
        if event is not None:
            session.add(
                Event(campaign_id=event.campaign_id, kind=event.kind, payload=event.payload)
            )

    # -- campaigns ---------------------------------------------------------------------------

    def create_campaign(self, *, name: str, spec: dict[str, Any], seed: int) -> CampaignRecord:
        with self._write() as session:
            row = Campaign(name=name, spec=spec, seed=seed, status=CampaignStatus.PENDING)
            session.add(row)
            session.flush()
            return _campaign(row, self._cutoff())

    def get_campaign(self, campaign_id: int) -> CampaignRecord:
        with self._read() as session:
            row = session.get(Campaign, campaign_id)
            if row is None:
                raise NotFoundError(f"no campaign with id {campaign_id}")
            return _campaign(row, self._cutoff())

    def list_campaigns(self) -> list[CampaignRecord]:
        cutoff = self._cutoff()
        with self._read() as session:
            rows = session.scalars(select(Campaign).order_by(Campaign.id.desc()))
            return [_campaign(row, cutoff) for row in rows]

    def set_campaign_status(
        self, campaign_id: int, *, status: CampaignStatus, reason: str | None = None
    ) -> CampaignRecord:
        with self._write() as session:
            row = session.get(Campaign, campaign_id)
            if row is None:
                raise NotFoundError(f"no campaign with id {campaign_id}")
            row.status = status
            row.reason = reason
            row.finished_at = utcnow() if status in _FINAL_CAMPAIGN_STATUSES else None
            session.flush()
            return _campaign(row, self._cutoff())

    def transition_campaign(
        self,
        campaign_id: int,
        *,
        to: CampaignStatus,
        allowed_from: Sequence[CampaignStatus],
        reason: str | None = None,
        event: NewEvent | None = None,
        release_lease: bool = False,
        unowned: bool = False,
        dead_owner: str | None = None,
    ) -> CampaignRecord | None:
        """Set the status only if it is one of `allowed_from`, in one statement (compare and set).

        Returns the updated record, or None when the campaign was in another status, so a request
        that races an engine writing FINISHED cannot overwrite it. NotFoundError for unknown ids.
        INTERRUPTED in `allowed_from` matches a RUNNING campaign whose lease is free or expired.
        `event` is written with the change (not without it). `release_lease` clears the lease (an
        engine's stop, through its fenced view). `unowned` applies the change only when no live
        engine owns the campaign (its lease is free, expired, or `dead_owner`'s), and clears
        the lease.
        """
        final = to in _FINAL_CAMPAIGN_STATUSES
        cutoff = self._cutoff()
        stored = [str(s) for s in allowed_from if s is not CampaignStatus.INTERRUPTED]
        match: ColumnElement[bool] = Campaign.status.in_(stored)
        if CampaignStatus.INTERRUPTED in allowed_from:
            interrupted = and_(Campaign.status == CampaignStatus.RUNNING, self._lease_dead(cutoff))
            match = or_(match, interrupted)
        values: dict[str, Any] = {
            "status": to,
            "reason": reason,
            "finished_at": utcnow() if final else None,
        }
        if unowned:
            free = self._lease_dead(cutoff)
            match = and_(
                match, or_(free, Campaign.lease_owner == dead_owner) if dead_owner else free
            )
        if release_lease or unowned:
            values |= dict.fromkeys(_LEASE_COLUMNS)
        statement = update(Campaign).where(Campaign.id == campaign_id, match).values(**values)
        with self._write() as session:
            changed = session.execute(statement).rowcount
            row = session.get(Campaign, campaign_id)
            if row is None:
                raise NotFoundError(f"no campaign with id {campaign_id}")
            if changed:
                self._add_event(session, event)
            return _campaign(row, cutoff) if changed else None

    # -- leases ------------------------------------------------------------------------------

    def acquire_lease(
        self, campaign_id: int, *, owner: str, host: str, pid: int, dead_owner: str | None = None
    ) -> CampaignRecord:
        """Take the campaign's lease for `owner`, in one conditional UPDATE: only when it is
        free, expired, or `dead_owner`'s (a holder the caller knows has died). LeaseHeldError
        names the live owner otherwise; NotFoundError for unknown ids."""
        now = utcnow()
        match = self._lease_dead(now - timedelta(seconds=self.lease_ttl_s))
        if dead_owner is not None:
            match = or_(match, Campaign.lease_owner == dead_owner)
        statement = (
            update(Campaign)
            .where(Campaign.id == campaign_id, match)
            .values(
                lease_owner=owner,
                lease_host=host,
                lease_pid=pid,
                lease_since=now,
                lease_heartbeat=now,
            )
        )
        with self._write() as session:
            changed = session.execute(statement).rowcount
            row = session.get(Campaign, campaign_id)
            if row is None:
                raise NotFoundError(f"no campaign with id {campaign_id}")
            record = _campaign(row, self._cutoff())
        if not changed:
            assert record.lease is not None  # a live lease is what refused the UPDATE
            raise LeaseHeldError(campaign_id, record.lease)
        return record

    def renew_lease(self, campaign_id: int, owner: str) -> bool:
        """Renew `owner`'s heartbeat; False when the lease is no longer `owner`'s."""
        statement = (
            update(Campaign)
            .where(Campaign.id == campaign_id, Campaign.lease_owner == owner)
            .values(lease_heartbeat=utcnow())
        )
        with self._write() as session:
            return bool(session.execute(statement).rowcount)

    def release_lease(self, campaign_id: int, owner: str) -> bool:
        """Give `owner`'s lease up (the campaign, if left RUNNING, then reads INTERRUPTED)."""
        statement = (
            update(Campaign)
            .where(Campaign.id == campaign_id, Campaign.lease_owner == owner)
            .values(**dict.fromkeys(_LEASE_COLUMNS))
        )
        with self._write() as session:
            return bool(session.execute(statement).rowcount)

    def set_budget_used(
        self, campaign_id: int, used: dict[str, float], *, event: NewEvent | None = None
    ) -> None:
        with self._write() as session:
            row = session.get(Campaign, campaign_id)
            if row is None:
                raise NotFoundError(f"no campaign with id {campaign_id}")
            row.budget_used = dict(used)
            self._add_event(session, event)

    # -- candidates --------------------------------------------------------------------------

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
        graph: dict[str, Any] | None = None,
        fingerprint: str | None = None,
        verdict: dict[str, Any] | None = None,
        duplicate_of: int | None = None,
        event: NewEvent | None = None,
    ) -> CandidateRecord:
        """Record a verdict or a new status; fields left as None keep their stored value."""
        with self._write() as session:
            self._add_event(session, event)
            row = session.get(Candidate, candidate_id)
            if row is None:
                raise NotFoundError(f"no candidate with id {candidate_id}")
            row.status = status
            row.reason = reason
            updates = {
                "canonical_code": canonical_code,
                "graph": graph,
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
        """A campaign's candidates, id order, reading only the columns a leaderboard shows."""
        query = (
            select(Candidate.id, Candidate.name, Candidate.origin, Candidate.status)
            .where(Candidate.campaign_id == campaign_id)
            .order_by(Candidate.id)
        )
        with self._read() as session:
            return [
                CandidateSummary(id=i, name=n, origin=o, status=CandidateStatus(st))
                for i, n, o, st in session.execute(query)
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
    ) -> EvaluationRecord:
        """Record the outcome of a PENDING or RUNNING evaluation (with `event`, if given).

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
    ) -> list[EvaluationRecord]:
        query = select(Evaluation)
        if candidate_id is not None:
            query = query.where(Evaluation.candidate_id == candidate_id)
        if campaign_id is not None:
            query = query.join(Candidate).where(Candidate.campaign_id == campaign_id)
        if status is not None:
            query = query.where(Evaluation.status == status)
        with self._read() as session:
            return [_evaluation(row) for row in session.scalars(query.order_by(Evaluation.id))]

    def campaign_stamp(self, campaign_id: int) -> tuple[int, str]:
        """A cheap version of what a campaign shows: its newest event id and its status.

        Every change a reader sees (a candidate's verdict, a finished evaluation, a stage score, a
        stop) is followed by an event, so an unchanged stamp means unchanged results, up to the
        writes of the step in progress. NotFoundError for unknown ids.
        """
        newest = select(func.coalesce(func.max(Event.id), 0)).where(
            Event.campaign_id == campaign_id
        )
        with self._read() as session:
            status = session.scalar(select(Campaign.status).where(Campaign.id == campaign_id))
            if status is None:
                raise NotFoundError(f"no campaign with id {campaign_id}")
            return int(session.scalar(newest) or 0), str(status)

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
        failed = LLMCall.error.is_not(None)
        query = select(
            LLMCall.model,
            LLMCall.purpose,
            failed,
            func.count(),
            func.coalesce(func.sum(LLMCall.prompt_tokens), 0),
            func.coalesce(func.sum(LLMCall.completion_tokens), 0),
            func.coalesce(func.sum(LLMCall.cost_usd), 0.0),
        ).group_by(LLMCall.model, LLMCall.purpose, failed)
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

    # -- LLM calls and events ----------------------------------------------------------------

    def record_llm_call(
        self,
        *,
        campaign_id: int | None,
        purpose: str,
        model: str,
        prompt_tokens: int = 0,
        completion_tokens: int = 0,
        cost_usd: float = 0.0,
        latency_s: float = 0.0,
        error: str | None = None,
    ) -> LLMCallRecord:
        with self._write() as session:
            row = LLMCall(
                campaign_id=campaign_id,
                purpose=purpose,
                model=model,
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
                cost_usd=cost_usd,
                latency_s=latency_s,
                error=error,
            )
            session.add(row)
            session.flush()
            return _record(LLMCallRecord, row)

    def list_llm_calls(self, *, campaign_id: int) -> list[LLMCallRecord]:
        """A campaign's LLM calls, oldest first."""
        query = select(LLMCall).where(LLMCall.campaign_id == campaign_id).order_by(LLMCall.id)
        with self._read() as session:
            return [_record(LLMCallRecord, row) for row in session.scalars(query)]

    def llm_cost(self, *, campaign_id: int) -> float:
        """Dollars spent on LLM calls by a campaign so far."""
        query = select(func.coalesce(func.sum(LLMCall.cost_usd), 0.0)).where(
            LLMCall.campaign_id == campaign_id
        )
        with self._read() as session:
            return float(session.scalar(query) or 0.0)

    def append_event(
        self, *, campaign_id: int, kind: str, payload: dict[str, Any] | None = None
    ) -> EventRecord:
        with self._write() as session:
            row = Event(campaign_id=campaign_id, kind=kind, payload=payload or {})
            session.add(row)
            session.flush()
            return _record(EventRecord, row)

    def list_events(
        self, *, campaign_id: int, after_id: int = 0, limit: int = 1000, kind: str | None = None
    ) -> list[EventRecord]:
        """Events of a campaign newer than `after_id`, oldest first (the stream SSE follows)."""
        query = select(Event).where(Event.campaign_id == campaign_id, Event.id > after_id)
        if kind is not None:
            query = query.where(Event.kind == kind)
        query = query.order_by(Event.id).limit(limit)
        with self._read() as session:
            return [_record(EventRecord, row) for row in session.scalars(query)]


_OPEN_EVALUATION_STATUSES = {EvaluationStatus.PENDING, EvaluationStatus.RUNNING}
_LEASE_COLUMNS = ("lease_owner", "lease_host", "lease_pid", "lease_since", "lease_heartbeat")


def _check_score(status: EvaluationStatus, score: float | None) -> None:
    # A failed evaluation carries a reason, never a number that selection could mistake for fitness.
    if status != EvaluationStatus.DONE and score is not None:
        raise ValueError(f"only DONE evaluations carry a score (got status {status})")


def open_archive(
    url: str, *, migrate: bool = True, lease_ttl_s: float = DEFAULT_LEASE_TTL_S
) -> Archive:
    """Open the archive at `url`, bringing its schema up to date first (the default)."""
    engine = create_archive_engine(url)
    if migrate:
        upgrade(engine)
    return Archive(engine, lease_ttl_s=lease_ttl_s)


__all__ = ["DEFAULT_LEASE_TTL_S", "Archive", "open_archive"]
