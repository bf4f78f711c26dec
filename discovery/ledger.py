"""The engine's in-memory index of one campaign: its candidates and evaluations, by key.

The archive is the truth: a `Ledger` is filled from it when the engine starts (so a resumed campaign
sees everything a killed one stored) and then kept current with the records the archive returns on
each write the engine makes. The engine is the only writer of a running campaign's candidates and
evaluations, so the index never goes stale, and the loop reads it instead of scanning tables: the
cost of a decision no longer grows with the size of the campaign.

It does not write to the archive and decides nothing.
"""

from __future__ import annotations

from collections.abc import Iterable

from discovery.archive import (
    CandidateRecord,
    CandidateStatus,
    EvaluationRecord,
    EvaluationStatus,
)

OPEN = (EvaluationStatus.PENDING, EvaluationStatus.RUNNING)

RunKey = tuple[str, str, int]  # (stage, task, seed): runs under identical conditions


class Ledger:
    """Candidates and evaluations of one campaign, indexed by id, candidate and run key."""

    def __init__(self) -> None:
        self.candidates: dict[int, CandidateRecord] = {}
        self.evaluations: dict[int, EvaluationRecord] = {}
        self._by_candidate: dict[int, dict[int, EvaluationRecord]] = {}
        self._by_key: dict[RunKey, dict[int, EvaluationRecord]] = {}

    # -- updates (records returned by the archive) -------------------------------------------

    def put_candidate(self, record: CandidateRecord) -> CandidateRecord:
        self.candidates[record.id] = record
        return record

    def put_candidates(self, records: Iterable[CandidateRecord]) -> None:
        for record in records:
            self.put_candidate(record)

    def put_evaluation(self, record: EvaluationRecord) -> EvaluationRecord:
        self.evaluations[record.id] = record
        self._by_candidate.setdefault(record.candidate_id, {})[record.id] = record
        key = (record.stage, record.task, record.seed)
        self._by_key.setdefault(key, {})[record.id] = record
        return record

    def put_evaluations(self, records: Iterable[EvaluationRecord]) -> None:
        for record in records:
            self.put_evaluation(record)

    # -- reads -------------------------------------------------------------------------------

    def of(self, candidate_id: int, stage: str | None = None) -> list[EvaluationRecord]:
        """A candidate's evaluations (at one stage), oldest first."""
        rows = self._by_candidate.get(candidate_id, {}).values()
        return sorted((e for e in rows if stage is None or e.stage == stage), key=lambda e: e.id)

    def at(self, key: RunKey) -> list[EvaluationRecord]:
        """Every candidate's evaluations of one (stage, task, seed)."""
        return list(self._by_key.get(key, {}).values())

    def with_status(self, *statuses: CandidateStatus) -> list[CandidateRecord]:
        return [c for c in self.candidates.values() if c.status in statuses]

    def open_evaluations(self) -> list[EvaluationRecord]:
        return [e for e in self.evaluations.values() if e.status in OPEN]

    def proposed(self) -> int:
        """Candidates written by the proposer (baselines are not counted)."""
        return sum(1 for c in self.candidates.values() if c.origin != "baseline")

    def baseline(self, name: str) -> CandidateRecord | None:
        return next(
            (c for c in self.candidates.values() if c.origin == "baseline" and c.name == name),
            None,
        )
