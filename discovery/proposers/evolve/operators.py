"""Variation operators of the `evolve` proposer: random trees and the edits that make children.

Each operator takes trees and a `numpy.random.Generator` and returns an `Edit` (the new tree and a
clause saying what changed, for the proposal's thought) or None when it has nothing to do (a tree
with no constants cannot be perturbed):

    mutate_subtree     replace a random subtree by a random small tree
    mutate_point       swap one op or leaf for a compatible one (sigmoid <-> tanh, add <-> sub)
    perturb_constants  multiply constants by log-normal noise (sometimes add Gaussian noise)
    crossover          replace a subtree of one parent by a subtree of the other
    blend              a·L1 + (1-a)·L2, or a sigmoid gate on βΔ between L1 and L2 (LRML-style)

Random trees lean towards loss-shaped pieces: margins scaled by beta (βΔ, βs_c, βs_r) are
drawn as often as raw leaves, and constants come from a few round values. Operators do not check
what they build: the proposer rejects trees that are too big, ill-typed or degenerate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from discovery.proposers.evolve.codegen import describe
from discovery.proposers.evolve.expr import (
    BATCH_OPS,
    BINARY_OPS,
    CONST,
    LENGTH_LEAVES,
    UNARY_OPS,
    WHERE,
    Node,
    Path,
    call,
    const,
    is_nonneg,
    is_per_example,
    leaf,
    node_at,
    replace_at,
    walk,
)

__all__ = [
    "Edit",
    "Space",
    "blend",
    "crossover",
    "mutate_point",
    "mutate_subtree",
    "perturb_constants",
    "random_tree",
]


@dataclass(frozen=True)
class Space:
    """What random trees may contain."""

    subtree_depth: int = 3  # levels of a random subtree grown by mutation (a leaf is 1)
    batch_stats: bool = True  # allow mean/std over the batch
    length_leaves: bool = True  # allow per-token log-ratios (adds chosen/rejected_lengths)


@dataclass(frozen=True)
class Edit:
    """A child tree and what was done to make it."""

    tree: Node
    what: str  # a clause for the thought, e.g. "replaced sigmoid(beta*s_r) by tanh(delta)"


# Per-example leaves and beta-scaled margins, with their draw weights.
_EXAMPLE_LEAVES: tuple[tuple[str, float], ...] = (
    ("z", 4.0),  # beta * delta
    ("delta", 2.0),
    ("zc", 1.5),  # beta * s_c
    ("zr", 1.5),  # beta * s_r
    ("s_c", 1.0),
    ("s_r", 1.0),
    ("s_c_avg", 0.4),
    ("s_r_avg", 0.4),
    ("pi_delta", 0.3),
)
_NICE_CONSTANTS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0)
# Point-mutation groups: monotone increasing maps, even maps, batch statistics.
_INCREASING = ("logsigmoid", "sigmoid", "tanh", "softplus", "relu", "exp", "log1p")
_EVEN = ("square", "abs")
_LEAF_SWAPS = {
    "delta": ("s_c", "pi_delta"),
    "s_c": ("delta", "s_c_avg"),
    "s_r": ("s_r_avg",),
    "s_c_avg": ("s_c",),
    "s_r_avg": ("s_r",),
    "pi_delta": ("delta",),
}
_BINARY_SWAPS = {"add": "sub", "sub": "add", "mul": "div", "div": "mul"}


def _pick(rng: np.random.Generator, options: list[tuple[str, float]]) -> str:
    weights = np.array([w for _, w in options], dtype=float)
    index = int(rng.choice(len(options), p=weights / weights.sum()))
    return options[index][0]


def round_sig(value: float, digits: int = 3) -> float:
    return float(f"{value:.{digits}g}")


def random_constant(rng: np.random.Generator) -> Node:
    value = float(_NICE_CONSTANTS[int(rng.integers(len(_NICE_CONSTANTS)))])
    if rng.random() < 0.4:
        value = round_sig(value * math.exp(rng.normal(0.0, 0.4)))
    return const(-value if rng.random() < 0.15 else value)


def _example_leaf(rng: np.random.Generator, space: Space) -> Node:
    options = [(n, w) for n, w in _EXAMPLE_LEAVES if space.length_leaves or n not in LENGTH_LEAVES]
    name = _pick(rng, options)
    scaled = {"z": "delta", "zc": "s_c", "zr": "s_r"}
    if name in scaled:
        return leaf("beta") * leaf(scaled[name])
    return leaf(name)


def random_tree(rng: np.random.Generator, levels: int, space: Space, *, example: bool) -> Node:
    """A random tree of at most `levels` levels; it varies per example when `example` is True."""
    if levels <= 1 or rng.random() < 0.25:
        if example or rng.random() < 0.5:
            return _example_leaf(rng, space)
        return leaf("beta") if rng.random() < 0.3 else random_constant(rng)
    kinds = [("unary", 4.0), ("binary", 4.0), ("where", 0.4)]
    if space.batch_stats and not example:
        kinds.append(("batch", 0.6))
    kind = _pick(rng, kinds)
    if kind == "binary":
        return _random_binary(rng, levels, space)
    if kind == "where":
        cond = random_tree(rng, levels - 1, space, example=True)
        a = random_tree(rng, levels - 1, space, example=False)
        b = random_tree(rng, levels - 1, space, example=False)
        return call(WHERE, cond, a, b)
    child = random_tree(rng, levels - 1, space, example=True)
    if kind == "batch":
        ops = list(BATCH_OPS)
    else:
        ops = [op for op in UNARY_OPS if op != "log1p" or is_nonneg(child)]
    return call(ops[int(rng.integers(len(ops)))], child)


def _random_binary(rng: np.random.Generator, levels: int, space: Space) -> Node:
    """add/sub/mul/div with at least one operand that varies per example."""
    op = BINARY_OPS[int(rng.integers(len(BINARY_OPS)))]
    if op == "div":  # mostly a positive scale (x / 0.5, x / beta), else a guarded tensor ratio
        numerator = random_tree(rng, levels - 1, space, example=True)
        if rng.random() < 0.6:
            return call(op, numerator, leaf("beta") if rng.random() < 0.3 else _positive(rng))
        return call(op, numerator, random_tree(rng, levels - 1, space, example=True))
    first_varies = bool(rng.random() < 0.5)
    a = random_tree(rng, levels - 1, space, example=first_varies)
    b = random_tree(rng, levels - 1, space, example=not first_varies)
    return call(op, a, b)


def _positive(rng: np.random.Generator) -> Node:
    value = random_constant(rng).value or 1.0
    return const(abs(value))


def _random_path(rng: np.random.Generator, tree: Node, *, internal_bias: float = 0.0) -> Path:
    """A random node's path; with probability `internal_bias` only non-leaves are candidates."""
    paths = [path for path, _ in walk(tree)]
    if rng.random() < internal_bias:
        internal = [path for path, node in walk(tree) if node.args]
        paths = internal or paths
    return paths[int(rng.integers(len(paths)))]


def mutate_subtree(tree: Node, rng: np.random.Generator, space: Space) -> Edit | None:
    path = _random_path(rng, tree, internal_bias=0.5)
    old = node_at(tree, path)
    new = random_tree(rng, space.subtree_depth, space, example=is_per_example(old))
    if new == old:
        return None
    return Edit(replace_at(tree, path, new), f"replaced {describe(old)} by {describe(new)}")


def _point_options(node: Node, space: Space) -> list[Node]:
    op, args = node.op, node.args
    if op in _INCREASING or op in _EVEN:
        group = _INCREASING if op in _INCREASING else _EVEN
        ok = [o for o in group if o != op and (o != "log1p" or is_nonneg(args[0]))]
        return [call(o, *args) for o in ok]
    if op in _BINARY_SWAPS:
        return [call(_BINARY_SWAPS[op], *args)]
    if op in BATCH_OPS:
        return [call(o, *args) for o in BATCH_OPS if o != op]
    if op == WHERE:
        return [call(WHERE, args[0], args[2], args[1])]
    swaps = _LEAF_SWAPS.get(op, ())
    return [leaf(s) for s in swaps if space.length_leaves or s not in LENGTH_LEAVES]


def mutate_point(tree: Node, rng: np.random.Generator, space: Space) -> Edit | None:
    spots = [(path, node) for path, node in walk(tree) if _point_options(node, space)]
    if not spots:
        return None
    path, old = spots[int(rng.integers(len(spots)))]
    options = _point_options(old, space)
    new = options[int(rng.integers(len(options)))]
    if old.op == WHERE:
        what = f"swapped the branches of {describe(old)}"
    elif not old.args:
        what = f"replaced the input {old.op} by {new.op} in {describe(node_at(tree, path[:-1]))}"
    else:
        what = f"swapped {old.op} for {new.op} in {describe(old)}"
    return Edit(replace_at(tree, path, new), what)


def perturb_constants(tree: Node, rng: np.random.Generator, scale: float) -> Edit | None:
    """Multiply each chosen constant by exp(N(0, scale)) (or add N(0, scale)); 4 digits kept."""
    spots = [(path, node) for path, node in walk(tree) if node.op == CONST]
    if not spots:
        return None
    chosen = [spot for spot in spots if rng.random() < 0.5] or [
        spots[int(rng.integers(len(spots)))]
    ]
    changes = []
    for path, node in chosen:
        old = node.value or 0.0
        if old != 0 and rng.random() < 0.75:
            new = old * math.exp(rng.normal(0.0, scale))
        else:
            new = old + rng.normal(0.0, scale)
        new = round_sig(new, 4)
        if new != old:
            tree = replace_at(tree, path, const(new))
            changes.append(f"{old:g} -> {new:g}")
    if not changes:
        return None
    return Edit(tree, "constants " + ", ".join(changes))


def crossover(
    a: Node, b: Node, rng: np.random.Generator, a_label: str, b_label: str
) -> Edit | None:
    """Replace a random subtree of `a` by a random subtree of `b` of a compatible kind."""
    path = _random_path(rng, a, internal_bias=0.3)
    old = node_at(a, path)
    donors = [n for _, n in walk(b) if is_per_example(n) or not is_per_example(old)]
    internal = [n for n in donors if n.args]
    pool = internal if internal and rng.random() < 0.8 else donors
    if not pool:
        return None
    new = pool[int(rng.integers(len(pool)))]
    if new == old:
        return None
    what = f"replaced {describe(old)} in {a_label} by {b_label}'s {describe(new)}"
    return Edit(replace_at(a, path, new), what)


def blend(a: Node, b: Node, rng: np.random.Generator, a_label: str, b_label: str) -> Edit | None:
    """a·L1 + (1-a)·L2, or (1-m)·L1 + m·L2 with the gate m = σ(βΔ/τ) (DiscoPOP's LRML form)."""
    if a == b:
        return None
    if rng.random() < 0.5:
        weight = round(float(rng.uniform(0.2, 0.8)), 2)
        rest = round(1.0 - weight, 2)
        tree = const(weight) * a + const(rest) * b
        return Edit(tree, f"mixed the losses as {weight:g}·L({a_label}) + {rest:g}·L({b_label})")
    tau = round_sig(10 ** float(rng.uniform(math.log10(0.05), 0.0)), 2)
    gate = call("sigmoid", leaf("beta") * leaf("delta") / const(tau))
    tree = (1 - gate) * a + gate * b
    what = (
        f"gated with σ(βΔ/{tau:g}), handing {a_label}'s loss over to {b_label}'s as the "
        "margin grows"
    )
    return Edit(tree, what)
