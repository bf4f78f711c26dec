"""The `evolve` proposer: symbolic search over loss expressions, offline and deterministic.

`EvolveProposer(config, rng).propose(context, n)` turns the context's parents into up to `n` new
losses in the same JSON form an LLM would write (`name`, `thought`, `code`), each carrying its
expression tree as the `genome`. Parents are read back from their genomes; parents without one
(written by an LLM) or with an unreadable one are skipped, and when none is usable the seed trees
(the baselines, seeds.py) stand in. On a cold start (no parents at all) the seeds themselves are
proposed first, once each. Children come from the operators in operators.py, chosen by weight;
a child is emitted only if it passes the structural rules (size, depth, typing, varies per
example), is new to this proposer instance (canonical form), is not the code of a recent failure,
and passes the cheap torch screen of sanity.py.

Determinism: all choices come from the `numpy.random.Generator` passed in, so the same seed and
the same sequence of contexts give the same proposals. No network, no source is executed here,
and nothing is stored: the engine records the proposals and hands them back as parents.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, fields
from enum import StrEnum

import numpy as np

from discovery.proposers.base import Parent, Proposal, ProposalContext
from discovery.proposers.errors import GenomeError
from discovery.proposers.evolve.codegen import to_source
from discovery.proposers.evolve.expr import (
    Node,
    canonical,
    decode_genome,
    encode_genome,
    simplify,
    structural_problem,
)
from discovery.proposers.evolve.operators import (
    Edit,
    Space,
    blend,
    crossover,
    mutate_point,
    mutate_subtree,
    perturb_constants,
)
from discovery.proposers.evolve.sanity import sanity_problem
from discovery.proposers.evolve.seeds import SEED_TREES

__all__ = ["EvolveConfig", "EvolveProposer", "Operator"]

logger = logging.getLogger(__name__)


class Operator(StrEnum):
    """The `operator` of an evolve proposal."""

    SEED = "seed"  # a baseline tree, proposed as is
    MUTATE = "mutate"  # subtree mutation
    POINT = "point"  # point mutation: one op or input swapped
    PERTURB = "perturb"  # constants perturbed
    CROSSOVER = "crossover"  # a subtree taken from a second parent
    BLEND = "blend"  # two parents' losses mixed or gated


_ACTION = {
    Operator.MUTATE: "Subtree mutation",
    Operator.POINT: "Point mutation",
    Operator.PERTURB: "Constant perturbation",
    Operator.CROSSOVER: "Crossover",
    Operator.BLEND: "Blend",
}


@dataclass(frozen=True)
class EvolveConfig:
    """Search settings of the evolve proposer. Operator weights are relative (normalised)."""

    max_depth: int = 20  # deepest tree emitted (a leaf is 1 level; AQFL, the deepest seed, is 17)
    # Largest tree emitted, in distinct subtrees (expr.dag_size); AQFL, the largest seed, has 29.
    max_nodes: int = 48
    subtree_depth: int = 3  # levels of the random subtree that subtree mutation grows
    mutate_weight: float = 0.3  # subtree mutation
    point_weight: float = 0.15  # point mutation
    perturb_weight: float = 0.2  # constant perturbation
    crossover_weight: float = 0.2  # crossover with a second parent
    blend_weight: float = 0.15  # linear or sigmoid-gated blend of two parents' losses
    constant_scale: float = 0.3  # σ of the log-normal factor (or additive noise) on a constant
    seeds: tuple[str, ...] = tuple(SEED_TREES)  # seed trees, by baseline name (seeds.py)
    emit_seeds: bool = True  # on a cold start, propose the seed trees themselves first
    seed_partner_prob: float = 0.15  # chance that the second parent is a seed, for diversity
    batch_stats: bool = True  # random subtrees may use mean/std over the batch
    length_leaves: bool = True  # random subtrees may use per-token log-ratios
    sanity_check: bool = True  # screen children with torch on fixed batches (sanity.py)
    max_attempts: int = 50  # tries per requested proposal before returning fewer than n

    def __post_init__(self) -> None:
        object.__setattr__(self, "seeds", tuple(self.seeds))  # a list from a YAML spec is fine
        for f in fields(self):
            if f.name.endswith("_weight") and getattr(self, f.name) < 0:
                raise ValueError(f"EvolveConfig.{f.name} must be >= 0")
        if sum(w for _, w in self.operator_weights()) <= 0:
            raise ValueError("EvolveConfig: at least one operator weight must be positive")
        for name in ("max_depth", "max_nodes", "subtree_depth", "max_attempts"):
            if getattr(self, name) < 1:
                raise ValueError(f"EvolveConfig.{name} must be >= 1")
        unknown = [s for s in self.seeds if s not in SEED_TREES]
        if unknown or not self.seeds:
            raise ValueError(
                f"EvolveConfig.seeds: unknown {unknown} or empty; choose from {sorted(SEED_TREES)}"
            )
        if not 0 <= self.seed_partner_prob <= 1 or self.constant_scale <= 0:
            raise ValueError("EvolveConfig: seed_partner_prob in [0, 1], constant_scale > 0")

    def operator_weights(self) -> list[tuple[Operator, float]]:
        return [
            (Operator.MUTATE, self.mutate_weight),
            (Operator.POINT, self.point_weight),
            (Operator.PERTURB, self.perturb_weight),
            (Operator.CROSSOVER, self.crossover_weight),
            (Operator.BLEND, self.blend_weight),
        ]

    def space(self) -> Space:
        return Space(self.subtree_depth, self.batch_stats, self.length_leaves)


@dataclass(frozen=True)
class _Material:
    """A tree to vary and where it came from."""

    tree: Node
    label: str  # "#12" for an archive candidate, "seed lrml" for a seed
    parent_id: int | None  # archive id (for a seed, its baseline's, if the campaign has it)


@dataclass(frozen=True)
class _Child:
    """An edit not yet checked, with the operator and the material it came from."""

    edit: Edit
    operator: Operator
    parents: tuple[_Material, ...]


class EvolveProposer:
    """Proposes losses by varying expression trees; see the module docstring."""

    name = "evolve"

    def __init__(self, config: EvolveConfig, rng: np.random.Generator) -> None:
        self.config = config
        self.rng = rng
        self._seen: set[str] = set()  # canonical forms emitted, or rejected, by this instance
        self._baselines: dict[str, int] = {}  # the campaign's baselines' ids, for seeds' lineage

    def propose(self, context: ProposalContext, n: int) -> list[Proposal]:
        """Up to `n` new proposals, fewer when `n * max_attempts` tries do not find enough."""
        proposals: list[Proposal] = []
        if n <= 0:
            return proposals
        self._baselines = dict(context.baselines)
        pool = self._material(context)
        for item in pool:
            self._seen.add(canonical(item.tree))  # never propose a parent again
        failed = frozenset(failure.code for failure in context.failures)
        if not context.parents and not context.inspirations and self.config.emit_seeds:
            for name in self.config.seeds:
                if len(proposals) >= n:
                    break
                seed = _Material(SEED_TREES[name], f"seed {name}", context.baselines.get(name))
                child = _Child(Edit(seed.tree, ""), Operator.SEED, (seed,))
                proposal = self._finish(child, failed)
                if proposal is not None:
                    proposals.append(proposal)
        if not pool:  # no readable parent: vary the seeds (never re-proposing one as is)
            pool = [
                _Material(SEED_TREES[s], f"seed {s}", context.baselines.get(s))
                for s in self.config.seeds
            ]
            self._seen.update(canonical(item.tree) for item in pool)
        attempts = n * self.config.max_attempts
        while len(proposals) < n and attempts > 0:
            attempts -= 1
            child = self._vary(pool)
            proposal = None if child is None else self._finish(child, failed)
            if proposal is not None:
                proposals.append(proposal)
        return proposals

    # -- material -------------------------------------------------------------------------------
    def _material(self, context: ProposalContext) -> list[_Material]:
        """Readable parents, best first, then inspirations; unreadable ones are skipped."""
        pool: list[_Material] = []
        ids: set[int] = set()
        for parent in (*context.parents, *context.inspirations):
            if parent.id in ids:
                continue
            tree = _tree_of(parent)
            if tree is not None:
                ids.add(parent.id)
                pool.append(_Material(tree, f"#{parent.id}", parent.id))
        return pool

    def _seed(self) -> _Material:
        name = self.config.seeds[int(self.rng.integers(len(self.config.seeds)))]
        return _Material(SEED_TREES[name], f"seed {name}", self._baselines.get(name))

    def _primary(self, pool: list[_Material]) -> int:
        weights = 1.0 / np.arange(1, len(pool) + 1)  # rank-weighted: the pool is best first
        return int(self.rng.choice(len(pool), p=weights / weights.sum()))

    def _partner(self, pool: list[_Material], primary: int) -> _Material:
        others = [i for i in range(len(pool)) if i != primary]
        if not others or self.rng.random() < self.config.seed_partner_prob:
            return self._seed()
        return pool[others[int(self.rng.integers(len(others)))]]

    # -- variation ------------------------------------------------------------------------------
    def _vary(self, pool: list[_Material]) -> _Child | None:
        options = self.config.operator_weights()
        weights = np.array([w for _, w in options])
        operator = options[int(self.rng.choice(len(options), p=weights / weights.sum()))][0]
        index = self._primary(pool)
        first = pool[index]
        space = self.config.space()
        if operator is Operator.MUTATE:
            edit, parents = mutate_subtree(first.tree, self.rng, space), (first,)
        elif operator is Operator.POINT:
            edit, parents = mutate_point(first.tree, self.rng, space), (first,)
        elif operator is Operator.PERTURB:
            edit = perturb_constants(first.tree, self.rng, self.config.constant_scale)
            parents = (first,)
        else:
            second = self._partner(pool, index)
            parents = (first, second)
            vary = crossover if operator is Operator.CROSSOVER else blend
            edit = vary(first.tree, second.tree, self.rng, first.label, second.label)
        return None if edit is None else _Child(edit, operator, parents)

    def _finish(self, child: _Child, failed: frozenset[str]) -> Proposal | None:
        """The proposal for `child`, or None when it must not be emitted (logged at debug)."""
        tree = simplify(child.edit.tree)
        key = canonical(tree)
        if key in self._seen:
            return None
        self._seen.add(key)
        problem = structural_problem(
            tree, max_nodes=self.config.max_nodes, max_depth=self.config.max_depth
        )
        code = to_source(tree)
        if problem is None and code in failed:
            problem = "is the code of a recent failure"
        if problem is None and self.config.sanity_check:
            problem = sanity_problem(tree)
        if problem is not None:
            logger.debug("evolve: dropped %s child %s: it %s", child.operator, key, problem)
            return None
        return Proposal(
            name="evo-" + hashlib.sha256(key.encode()).hexdigest()[:8],
            thought=_thought(child),
            code=code,
            parent_ids=tuple(p.parent_id for p in child.parents if p.parent_id is not None),
            genome=encode_genome(tree),
            origin=self.name,
            operator=str(child.operator),
        )


def _tree_of(parent: Parent) -> Node | None:
    if parent.genome is None:
        return None
    try:
        return decode_genome(parent.genome)
    except GenomeError as exc:
        logger.debug("evolve: skipping parent #%s: %s", parent.id, exc)
        return None


def _thought(child: _Child) -> str:
    if child.operator is Operator.SEED:
        label = child.parents[0].label.removeprefix("seed ")
        return (
            f"Seed: the {label} baseline from the loss library, written as an expression tree "
            "to start the search from."
        )
    names = " and ".join(p.label for p in child.parents)
    return f"{_ACTION[child.operator]} of {names}: {child.edit.what}."
