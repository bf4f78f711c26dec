"""Scores relative to DPO: each stage's comparison, candidate minus DPO, seed by seed.

A candidate and DPO are trained with the same seed, data and steps, so each seed gives one paired
difference; a stage score is their mean with a 95% interval and n (`evaluator.stats.paired`).
Failed runs give no difference (they are statuses, not numbers), so a candidate's score is built
only from the seeds where both runs finished.

What the difference is depends on the stage (EVALUATION.md, rule 1: compare at equal KL):
- `bandit`: `frontier/area`, the area under the loss's own reward-KL curve over a beta grid, minus
  DPO's (each run already trains the grid).
- `tinylm`: `reward/mean` minus DPO's reward-KL frontier at the candidate's `kl/ref`
  (`evaluator.frontier`); DPO's run of the same task and seed carries its beta grid's points.
- `hf`: with a generation metric (`reward/mean`, `judge/win_rate`) and `kl/ref` measured, the
  metric minus DPO's frontier through DPO's runs at every beta of the grid (the stage's tasks) of
  the same seed; otherwise (`rewards/accuracies`, `rewards/margins`: no generations, no KL) the
  difference to DPO at the same beta.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from evaluator.frontier import Frontier, Point, points_from_metrics
from evaluator.hf.config import HFConfig
from evaluator.stage_configs import StageConfig, parse_stage_config
from evaluator.stats import EMPTY, Paired, paired

# The metric each fixed-metric stage ranks by; higher is better for every one of them.
SCORE_METRICS: dict[str, str] = {
    "bandit": "frontier/area",
    "tinylm": "reward/mean",
}
# Generation metrics and their value at KL 0 (the reference against itself): a reward model's
# score of the reference's samples, and a win rate against the reference of one half.
_ORIGIN: dict[str, str | float] = {"reward/mean": "reward/ref_mean", "judge/win_rate": 0.5}

Metrics = Mapping[str, float]


def score_metric(stage: str, config: StageConfig | Mapping[str, Any] | None = None) -> str:
    """The metric a stage ranks by. The hf stage's depends on its config: `score_metric` if set,
    else judge/win_rate with a judge, else reward/mean with a reward model, else the held-out
    implicit reward accuracy."""
    if stage == "hf":
        return cast(HFConfig, parse_stage_config("hf", config or {})).metric
    return SCORE_METRICS[stage]


def uses_frontier(stage: str, metric: str) -> bool:
    """Is the stage's score taken against DPO's reward-KL frontier (rather than DPO at the
    candidate's own beta)?"""
    return stage == "tinylm" or (stage == "hf" and metric in _ORIGIN)


def frontier_tasks(stage: str, task: str, tasks: Sequence[str], metric: str) -> list[str]:
    """The tasks whose DPO runs (of the same seed) a score at `task` needs: every beta of the hf
    grid for a frontier score there, else `task` alone."""
    if stage == "hf" and uses_frontier(stage, metric):
        return list(tasks)
    return [task]


def versus_dpo(
    stage: str, metric: str, candidate: Metrics, dpo: Metrics, *, grid: Sequence[Metrics] = ()
) -> float:
    """One seed's paired difference: the candidate against DPO's run of the same task and seed
    (`dpo`) and, for an hf frontier, DPO's runs at every beta of the grid (`grid`)."""
    if not uses_frontier(stage, metric) or "kl/ref" not in candidate:
        return candidate[metric] - dpo[metric]
    if stage == "tinylm":
        points = points_from_metrics(dpo)
        if not points:  # a DPO run trained at one beta: its own point is the frontier
            points = [Point(0.0, dpo["kl/ref"], dpo[metric])]
    else:
        points = [Point(0.0, d["kl/ref"], d[metric]) for d in grid or (dpo,) if "kl/ref" in d]
    if not points:  # DPO measured no KL (no generations): DPO at the same beta
        return candidate[metric] - dpo[metric]
    origin = _ORIGIN.get(metric, "reward/ref_mean")
    origin_reward: float | None
    if not isinstance(origin, str):
        origin_reward = float(origin)
    else:  # the reference's reward under the seed: the same in both runs (common samples)
        origin_reward = candidate.get(origin, dpo.get(origin))
    frontier = Frontier.build(points, origin_reward=origin_reward)
    return candidate[metric] - frontier(candidate["kl/ref"])


@dataclass(frozen=True)
class StageScore:
    """A candidate's score at one stage, over seeds: the mean of per-seed differences to DPO
    with its 95% interval (`low`, `high`: None below 2 seeds)."""

    score: float | None  # mean of per-seed differences to DPO; None when no seed finished
    spread: float  # sample standard deviation of the differences (0 with one seed)
    seeds: int  # how many seeds contributed (n)
    low: float | None = None
    high: float | None = None

    @property
    def paired(self) -> Paired:
        return Paired(mean=self.score, low=self.low, high=self.high, n=self.seeds, sd=self.spread)

    def as_dict(self) -> dict[str, float | int | None]:
        return {
            "score": self.score,
            "score_low": self.low,
            "score_high": self.high,
            "n": self.seeds,
            "spread": self.spread,
        }


NO_SCORE = StageScore(score=None, spread=0.0, seeds=0)


def aggregate(per_seed: Sequence[float | None]) -> StageScore:
    """Per-seed differences (None for a seed that did not finish) into a stage score."""
    p = paired(per_seed)
    if p is EMPTY:
        return NO_SCORE
    return StageScore(score=p.mean, spread=p.sd, seeds=p.n, low=p.low, high=p.high)
