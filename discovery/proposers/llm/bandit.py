"""Choosing among several models in one campaign: Thompson sampling on acceptance per dollar.

`ModelBandit(models, rng)` keeps, per model, the candidates the sandbox accepted and rejected (a
call that failed after its retries counts as one rejection) and the dollars spent. `choose()`
draws each model's acceptance rate from its Beta(1 + accepted, 1 + rejected) posterior and divides
it by the model's mean cost per candidate (so the value is "accepted candidates per dollar"); the
highest draw wins. Free models (local endpoints) count a floor of `FREE_COST_USD` per candidate,
so among free models the choice is by acceptance rate alone, and an untried model starts at that
floor too (it is explored first). With one model there is nothing to choose. All draws come from
the generator passed in: a seeded campaign picks the same models.

It does not call models or judge candidates; the proposer reports outcomes through `update`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["FREE_COST_USD", "ModelBandit"]

FREE_COST_USD = 1e-4  # dollars per candidate assumed for free or untried models


@dataclass
class _Arm:
    accepted: int = 0
    rejected: int = 0
    dollars: float = 0.0

    def cost_per_candidate(self) -> float:
        tried = self.accepted + self.rejected
        return max(FREE_COST_USD, self.dollars / tried) if tried else FREE_COST_USD


class ModelBandit:
    def __init__(self, models: Sequence[str], rng: np.random.Generator) -> None:
        if not models:
            raise ValueError("ModelBandit needs at least one model")
        self.models = tuple(models)
        self.rng = rng
        self._arms = {m: _Arm() for m in self.models}

    def choose(self) -> str:
        if len(self.models) == 1:
            return self.models[0]
        values = [
            self.rng.beta(1 + arm.accepted, 1 + arm.rejected) / arm.cost_per_candidate()
            for arm in (self._arms[m] for m in self.models)
        ]
        return self.models[int(np.argmax(values))]

    def update(self, model: str, *, accepted: int, rejected: int, dollars: float) -> None:
        arm = self._arms[model]
        arm.accepted += accepted
        arm.rejected += rejected
        arm.dollars += dollars

    def stats(self) -> dict[str, tuple[int, int, float]]:
        """(accepted, rejected, dollars) by model, for logs and tests."""
        return {m: (a.accepted, a.rejected, a.dollars) for m, a in self._arms.items()}
