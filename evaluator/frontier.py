"""DPO's reward-KL frontier, and a candidate's score against it.

A loss is better than DPO only if it gets more true reward at the same KL to the reference, or the
same reward with less KL (EVALUATION.md, rule 1): reward alone rewards moving further from (or
staying nearer to) the reference, and which of the two wins depends on the task, not the loss. So
DPO is trained over a beta grid under the candidate's seed and data, giving points
(KL_i, reward_i); the frontier F is the piecewise-linear curve through the reference itself
(KL 0, the reference's reward) and those points, sorted by KL, flat beyond the largest KL. A
candidate at (KL, reward) scores

    reward - F(KL)

so DPO at any beta of the grid scores exactly 0, DPO at a beta between two grid points about 0,
and a loss that only moves along DPO's curve (a beta change, written differently) about 0.

Why interpolation at the candidate's KL rather than the area under each loss's own beta curve:
the area needs every candidate trained over the grid (x6 the cost), and the bandit stage keeps its
`frontier/area` for that. Flat beyond the grid is generous to a candidate that goes further
than DPO ever did; the grid is chosen wide enough that candidates rarely do (`Frontier.beyond`
tells).

Points travel in a DPO run's metrics as `frontier/beta=<beta>/kl` and `.../reward`. This module
does not train anything.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

PREFIX = "frontier/beta="


@dataclass(frozen=True)
class Point:
    """DPO trained at `beta`: its KL to the reference (nats per sequence) and its reward."""

    beta: float
    kl: float
    reward: float


def point_metrics(beta: float, kl: float, reward: float) -> dict[str, float]:
    """One grid point as metric entries (repr keeps every digit of beta)."""
    return {f"{PREFIX}{float(beta)!r}/kl": kl, f"{PREFIX}{float(beta)!r}/reward": reward}


def points_from_metrics(metrics: Mapping[str, float]) -> list[Point]:
    """The grid points a DPO run's metrics carry (none for a run trained at one beta)."""
    found: dict[float, dict[str, float]] = {}
    for key, value in metrics.items():
        if key.startswith(PREFIX):
            beta, _, what = key.removeprefix(PREFIX).rpartition("/")
            found.setdefault(float(beta), {})[what] = value
    return [
        Point(beta, v["kl"], v["reward"])
        for beta, v in sorted(found.items())
        if {"kl", "reward"} <= v.keys() and math.isfinite(v["kl"]) and math.isfinite(v["reward"])
    ]


@dataclass(frozen=True)
class Frontier:
    """The curve F: knots sorted by KL, the first at (0, the reference's reward)."""

    kls: tuple[float, ...]
    rewards: tuple[float, ...]

    @classmethod
    def build(cls, points: Sequence[Point], *, origin_reward: float | None) -> Frontier:
        """The curve through `points` and, when known, the reference at (0, `origin_reward`)."""
        # Monte Carlo KL can come out slightly below 0 near the reference; it is kept as
        # measured, so a candidate that is DPO at a grid beta lands on that very point.
        knots = sorted((p.kl, p.reward) for p in points)
        if origin_reward is not None:
            knots.append((0.0, origin_reward))
            knots.sort()
        if not knots:
            raise ValueError("a frontier needs at least one point")
        return cls(kls=tuple(k for k, _ in knots), rewards=tuple(r for _, r in knots))

    def __call__(self, kl: float) -> float:
        """F(kl): a knot's reward at its KL (the best, should two share one), linear between
        knots, flat beyond the last and before the first."""
        hits = [r for k, r in zip(self.kls, self.rewards, strict=True) if k == kl]
        if hits:
            return max(hits)
        if kl > self.kls[-1]:
            return self.rewards[-1]
        if kl < self.kls[0]:
            return self.rewards[0]
        i = bisect.bisect_right(self.kls, kl)  # kls[i-1] < kl < kls[i]
        k0, k1 = self.kls[i - 1], self.kls[i]
        r0, r1 = self.rewards[i - 1], self.rewards[i]
        return r0 + (r1 - r0) * (kl - k0) / (k1 - k0)

    def beyond(self, kl: float) -> bool:
        """Is `kl` past every DPO point (where F is extrapolated flat)?"""
        return kl > self.kls[-1]


def score(reward: float, kl: float, frontier: Frontier) -> float:
    """A candidate's reward minus DPO's frontier at the candidate's KL."""
    return reward - frontier(kl)
