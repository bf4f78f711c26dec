"""Islands of candidates, and the parents and inspirations a proposer is shown.

The population is derived from the archive each time it is asked (so a resumed campaign needs no
saved state): a member lives on the island it was proposed for. Parents are drawn from the island's
scored members by rank (the best is likeliest, any can be picked), inspirations from the other
islands uniformly (novelty: what this island has not explored). Migration: once `migration_every`
candidates have been accepted, each island also sees its neighbour's best as a possible parent, the
ring island i-1 -> i. All draws come from the generator passed in.

It does not score candidates or talk to the archive: the engine hands it members.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from discovery.proposers.base import Parent


@dataclass(frozen=True)
class Member:
    id: int
    name: str
    code: str
    island: int
    score: float | None  # first-stage score vs DPO on public tasks; None until evaluated
    genome: dict[str, Any] | None

    def as_parent(self) -> Parent:
        return Parent(
            id=self.id,
            name=self.name,
            code=self.code,
            score=self.score,
            genome=self.genome,
            island=self.island,
        )


class Population:
    def __init__(
        self, *, islands: int, migration_every: int, parents: int, inspirations: int
    ) -> None:
        self.islands = islands
        self.migration_every = migration_every
        self.parents = parents
        self.inspirations = inspirations

    def island_for(self, proposal_index: int) -> int:
        """Islands take turns, so each grows at the same pace."""
        return proposal_index % self.islands

    def sample(
        self, members: Sequence[Member], *, island: int, accepted: int, rng: np.random.Generator
    ) -> tuple[tuple[Parent, ...], tuple[Parent, ...]]:
        """(parents best first, inspirations) for a proposal on `island`."""
        scored = [m for m in members if m.score is not None]
        local = [m for m in scored if m.island == island]
        if accepted >= self.migration_every and self.islands > 1:
            neighbour = [m for m in scored if m.island == (island - 1) % self.islands]
            if neighbour:
                local.append(max(neighbour, key=lambda m: m.score or 0.0))
        if not local:  # an empty island starts from the best anywhere (baselines at first)
            local = scored
        parents = _by_rank(local, self.parents, rng)
        chosen = {p.id for p in parents}
        others = [m for m in scored if m.island != island and m.id not in chosen]
        k = min(self.inspirations, len(others))
        picks = rng.choice(len(others), size=k, replace=False) if k else []
        inspirations = tuple(others[int(i)].as_parent() for i in picks)
        return parents, inspirations


def _by_rank(members: list[Member], k: int, rng: np.random.Generator) -> tuple[Parent, ...]:
    if not members:
        return ()
    ranked = sorted(members, key=lambda m: m.score or 0.0, reverse=True)
    # Rank weights 1/(r+1): the best is likeliest, the tail keeps a chance (diversity).
    weights = 1.0 / np.arange(1, len(ranked) + 1)
    k = min(k, len(ranked))
    picks = rng.choice(len(ranked), size=k, replace=False, p=weights / weights.sum())
    return tuple(ranked[int(i)].as_parent() for i in sorted(picks))
