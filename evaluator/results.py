"""What a training run returns: a status with a reason, never a fake score.

`RunStatus` values are the strings the archive stores in `evaluations.status`. A run that fails
carries its reason (and the steps it completed) and no metrics that selection could mistake for
fitness. `LLMCall` is one request to a model, as the archive's `llm_calls` table stores it: the hf
judge's calls ride on a run's result, a proposer's go to its recorder; both are this one record.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal


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
class LLMCall:
    """One request to a model, failed or not: what the dollar budget and the telemetry read."""

    # "propose": a proposer's fresh prompt; "repair": its follow-up with sandbox reasons;
    # "judge": the hf stage's pairwise judge.
    purpose: Literal["propose", "repair", "judge"]
    model: str
    prompt_tokens: int  # 0 for a failed request (unless the endpoint reported usage)
    completion_tokens: int
    cost_usd: float  # at the price table's price; 0 for a failed request
    latency_s: float
    error: str | None = None  # None for a reply; else what went wrong (never a secret)


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
    # LLM requests the run made (the hf stage's judge), whatever its status: stored by the
    # engine so they count toward the campaign's budget.
    llm_calls: list[LLMCall] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.status is RunStatus.DONE and self.reason is not None:
            raise ValueError("a DONE run carries no failure reason")
        if self.status is not RunStatus.DONE and not self.reason:
            raise ValueError(f"a {self.status} run must say why")
