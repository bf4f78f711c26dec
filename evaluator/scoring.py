"""Scores relative to DPO: each stage's fitness metric, candidate minus DPO, seed by seed.

A candidate and the DPO baseline are trained with the same seed, data and steps, so each seed gives
one paired difference; the stage score is their mean and the spread their sample standard
deviation. Failed runs give no difference (they are statuses, not numbers), so a candidate's score
is built only from the seeds where both runs finished.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from evaluator.hf.config import parse_hf_config
from evaluator.results import RunResult, RunStatus

# The metric each fixed-metric stage ranks by; higher is better for every one of them.
SCORE_METRICS: dict[str, str] = {
    "bandit": "frontier/area",
    "tinylm": "reward/mean",
}


def score_metric(stage: str, config: Mapping[str, Any] | None = None) -> str:
    """The metric a stage ranks by. The hf stage's depends on its config: `score_metric` if set,
    else judge/win_rate with a judge, else reward/mean with a reward model, else the held-out
    implicit reward accuracy."""
    if stage == "hf":
        return parse_hf_config(config or {}).metric
    return SCORE_METRICS[stage]


def seed_score(
    stage: str, candidate: RunResult, baseline: RunResult, *, metric: str | None = None
) -> float | None:
    """Candidate minus DPO on the stage's metric (or `metric`) for one seed; None if either run
    failed."""
    if candidate.status is not RunStatus.DONE or baseline.status is not RunStatus.DONE:
        return None
    metric = metric or SCORE_METRICS[stage]
    return candidate.metrics[metric] - baseline.metrics[metric]


@dataclass(frozen=True)
class StageScore:
    """A candidate's score at one stage, over seeds."""

    score: float | None  # mean of per-seed differences to DPO; None when no seed finished
    spread: float  # sample standard deviation of the differences (0 with one seed)
    seeds: int  # how many seeds contributed


def aggregate(per_seed: Sequence[float | None]) -> StageScore:
    values = [v for v in per_seed if v is not None and math.isfinite(v)]
    if not values:
        return StageScore(score=None, spread=0.0, seeds=0)
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return StageScore(score=statistics.fmean(values), spread=spread, seeds=len(values))
