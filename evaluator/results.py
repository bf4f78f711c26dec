"""What a training run returns: a status with a reason, never a fake score.

`RunStatus` values are the strings the archive stores in `evaluations.status`. A run that fails
carries its reason (and the steps it completed) and no metrics that selection could mistake for
fitness. A run's training curves (`training_curves`) are what the archive stores in
`evaluations.curves` for the web page's per-evaluation view; they never feed selection.
`LLMCall` is one request to a model, as the archive's `llm_calls` table stores it: the hf
judge's calls ride on a run's result, a proposer's go to its recorder; both are this one record.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

# Keys of `RunResult.curves`. "step" holds the optimizer step (1-based, an int) of each point;
# the others one value per point, None where it was not finite (JSON null in the archive).
CURVE_STEP = "step"
CURVE_LOSS = "loss"  # mean training loss of the step's batch
CURVE_MARGIN = "rewards/margins"  # batch mean of beta*((pi_c - ref_c) - (pi_r - ref_r)), TRL's name
CURVE_KL = "kl/ref"  # the stage's per-step KL estimate to the reference (see each stage)
# A run with more steps keeps every k-th step (and always its last), k as small as fits.
MAX_CURVE_POINTS = 200

Curves = dict[str, list[float | None]]


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
    # The transcript: the messages as sent ({"role", "content"} each: no key is ever in them),
    # the reply's text (None for a failed request), and the messages' hash (the `prompt_hash`
    # a candidate's provenance names: sha256 of their JSON, 16 hex). None where not kept (judge).
    messages: tuple[dict[str, str], ...] | None = None
    reply: str | None = None
    prompt_hash: str | None = None


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
    # Per-step training curves ({} when the stage records none): see `training_curves`.
    curves: Curves = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.status is RunStatus.DONE and self.reason is not None:
            raise ValueError("a DONE run carries no failure reason")
        if self.status is not RunStatus.DONE and not self.reason:
            raise ValueError(f"a {self.status} run must say why")


def training_curves(
    steps: Sequence[int],
    series: Mapping[str, Sequence[float]],
    max_points: int = MAX_CURVE_POINTS,
) -> Curves:
    """A run's curves from one value per step of each series: at most `max_points` points
    (every k-th step and the last), non-finite values as None; {} for a run with no steps."""
    n = len(steps)
    for name, values in series.items():
        if len(values) != n:
            raise ValueError(f"curve {name!r} has {len(values)} points for {n} steps")
    if n == 0:
        return {}
    every = -(-n // max_points)  # ceil: floor(n / every) <= max_points, the last point included
    keep = list(range(every - 1, n, every))
    if keep[-1] != n - 1:  # then n is no multiple of `every`, so fewer than max_points so far
        keep.append(n - 1)
    curves: Curves = {CURVE_STEP: [int(steps[i]) for i in keep]}
    for name, values in series.items():
        curves[name] = [_finite(float(values[i])) for i in keep]
    return curves


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None
