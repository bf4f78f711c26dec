"""Progress snapshots of a running campaign, for the CLI's live view and for logs.

A `Progress` is plain data built by the engine from its in-memory ledger, so taking one costs no
query. It does not render anything (the CLI does) and is not stored (events are).
"""

from __future__ import annotations

from dataclasses import dataclass, field


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
