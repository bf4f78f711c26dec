"""The store interface the engine and its collaborators write through (`CampaignStore`).

The engine, the cascade, intake and the budget keep every decision in a store so a killed
process resumes where it stopped; this protocol is all they may ask of it. The SQL archive
(`discovery.archive.Archive`, fenced by the campaign's lease) implements it; a test may pass
anything that speaks it. It says nothing about how rows are kept, locked or retried.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from discovery.archive import (
    CampaignRecord,
    CampaignStatus,
    CandidateRecord,
    CandidateStatus,
    EvaluationRecord,
    EvaluationStatus,
    EventRecord,
    LLMCallRecord,
    NewEvent,
)
from evaluator import LLMCall


class CampaignStore(Protocol):
    """One campaign's rows: its status, candidates, evaluations, LLM calls and events. A write
    that takes `event` stores the row and its event in one transaction."""

    # -- the campaign
    def get_campaign(self, campaign_id: int) -> CampaignRecord: ...

    def transition_campaign(
        self,
        campaign_id: int,
        *,
        to: CampaignStatus,
        allowed_from: Sequence[CampaignStatus],
        reason: str | None = None,
        event: NewEvent | None = None,
        release_lease: bool = False,
    ) -> CampaignRecord | None:
        """Compare-and-set of the status; None when it was not in `allowed_from`."""
        ...

    def set_budget_used(
        self, campaign_id: int, used: dict[str, float], *, event: NewEvent | None = None
    ) -> None: ...

    # -- candidates
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
    ) -> CandidateRecord: ...

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
    ) -> CandidateRecord: ...

    def find_by_canonical_code(
        self, *, campaign_id: int, canonical_code: str
    ) -> CandidateRecord | None: ...

    def list_candidates(
        self, *, campaign_id: int, status: CandidateStatus | None = None
    ) -> list[CandidateRecord]: ...

    # -- evaluations
    def add_evaluation(
        self, *, candidate_id: int, stage: str, task: str, seed: int, attempt: int = 0
    ) -> EvaluationRecord:
        """A PENDING run; refused if one of the same (candidate, stage, task, seed, attempt)
        exists."""
        ...

    def finish_evaluation(
        self,
        evaluation_id: int,
        *,
        status: EvaluationStatus,
        score: float | None = None,
        metrics: dict[str, Any] | None = None,
        timings: dict[str, float] | None = None,
        reason: str | None = None,
        curves: dict[str, list[float | None]] | None = None,
        event: NewEvent | None = None,
    ) -> EvaluationRecord: ...

    def set_score(
        self, evaluation_id: int, score: float, *, event: NewEvent | None = None
    ) -> EvaluationRecord: ...

    def list_evaluations(self, *, campaign_id: int | None = None) -> list[EvaluationRecord]: ...

    # -- telemetry
    def record_llm_call(self, *, campaign_id: int | None, call: LLMCall) -> LLMCallRecord: ...

    def llm_cost(self, *, campaign_id: int) -> float: ...

    def append_event(
        self, *, campaign_id: int, kind: str, payload: dict[str, Any] | None = None
    ) -> EventRecord: ...

    def list_events(
        self, *, campaign_id: int, after_id: int = 0, limit: int = 1000, kind: str | None = None
    ) -> list[EventRecord]: ...

    def count_events(self, *, campaign_id: int, kind: str | None = None) -> int: ...
