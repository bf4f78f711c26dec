"""What a training run returns: a status with a reason, never a fake score.

`RunStatus` values are the strings the archive stores in `evaluations.status`. A run that fails
carries its reason (and the steps it completed) and no metrics that selection could mistake for
fitness.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class RunStatus(StrEnum):
    DONE = "DONE"
    NAN_LOSS = "NAN_LOSS"  # the loss or a gradient went non-finite
    DIVERGED = "DIVERGED"  # finite, but ran away (e.g. KL to the reference exploded)
    TIMEOUT = "TIMEOUT"
    OOM = "OOM"
    ERROR = "ERROR"  # anything else; the reason holds the exception summary
    # The worker process died or Ray failed the task: nothing the loss did. Worth running again
    # (the engine re-queues it as a new attempt); the reason says what Ray reported.
    LOST = "LOST"


@dataclass(frozen=True)
class RunResult:
    """One training run of one loss on one task with one seed."""

    status: RunStatus
    metrics: dict[str, float] = field(default_factory=dict)  # slash names, e.g. "reward/mean"
    losses: list[float] = field(default_factory=list)  # mean training loss per step
    reason: str | None = None  # why it failed; None when DONE
    steps: int = 0  # optimizer steps completed
    seconds: float = 0.0
    # Seconds of the run's phases where a stage measures them (hf: load, train, score).
    timings: dict[str, float] = field(default_factory=dict)
    # LLM requests the run made (the hf stage's judge), whatever its status: plain dicts with the
    # archive's llm_calls fields (purpose, model, prompt_tokens, completion_tokens, cost_usd,
    # latency_s, error), stored by the engine so they count toward the campaign's budget.
    llm_calls: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.status is RunStatus.DONE and self.reason is not None:
            raise ValueError("a DONE run carries no failure reason")
        if self.status is not RunStatus.DONE and not self.reason:
            raise ValueError(f"a {self.status} run must say why")
