"""Progress snapshots of a running campaign, for the CLI's live view and for logs.

A `Progress` is plain data built from the engine's in-memory ledger, cascade and job queue, so
taking one costs no query. It does not render anything (the CLI does) and is not stored (events
are).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from discovery.ledger import OPEN, Ledger

if TYPE_CHECKING:  # annotations only: the CLI imports this module without the engine's parts
    from discovery.budget import BudgetTracker
    from discovery.cascade import Cascade
    from evaluator import EvalJob


@dataclass(frozen=True)
class StageProgress:
    name: str
    finished: int  # candidates (baselines included) with a score at this stage
    in_flight: int  # queued or running evaluations of this stage
    done: int  # finished evaluations of this stage (any status)


@dataclass
class Progress:
    """A snapshot for displays (the CLI's live view, logs)."""

    campaign_id: int
    status: str
    candidates: int = 0  # proposed (not baselines)
    counts: dict[str, int] = field(default_factory=dict)  # candidates by status
    in_flight: int = 0
    best_name: str | None = None  # the best proposed candidate at the furthest stage reached
    best_score: float | None = None  # its score vs DPO at that stage (public tasks)
    best_spread: float = 0.0  # standard deviation of that score over seeds
    best_stage: str | None = None
    stages: list[StageProgress] = field(default_factory=list)
    budget_used: dict[str, float] = field(default_factory=dict)
    budget_limits: dict[str, float] = field(default_factory=dict)  # the spec's limits, same keys


def snapshot(
    *,
    campaign_id: int,
    status: str,
    ledger: Ledger,
    cascade: Cascade,
    open_jobs: Iterable[EvalJob],
    budget: BudgetTracker,
) -> Progress:
    """The campaign as the engine holds it now."""
    counts: dict[str, int] = {}
    for c in ledger.candidates.values():
        counts[str(c.status)] = counts.get(str(c.status), 0) + 1
    open_by_stage: dict[str, int] = {}
    for job in open_jobs:
        open_by_stage[job.stage] = open_by_stage.get(job.stage, 0) + 1
    done_by_stage: dict[str, int] = {}
    for e in ledger.evaluations.values():
        if e.status not in OPEN:
            done_by_stage[e.stage] = done_by_stage.get(e.stage, 0) + 1
    stages = [
        StageProgress(
            stage.name,
            sum(1 for (_, name) in cascade.scores if name == stage.name),
            open_by_stage.get(stage.name, 0),
            done_by_stage.get(stage.name, 0),
        )
        for stage in cascade.spec.stages
    ]
    best = cascade.best()
    return Progress(
        campaign_id=campaign_id,
        status=status,
        candidates=ledger.proposed(),
        counts=counts,
        in_flight=sum(open_by_stage.values()),
        best_name=ledger.candidates[best[1]].name if best else None,
        best_score=best[2].score if best else None,
        best_spread=best[2].spread if best else 0.0,
        best_stage=best[0] if best else None,
        stages=stages,
        budget_used=budget.spent(),
        budget_limits=budget.limits(),
    )
