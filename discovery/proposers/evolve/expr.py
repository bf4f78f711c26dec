"""The expression language of the `evolve` proposer: small immutable trees over the contract inputs.

A loss is a tree of `Node`s. Leaves are per-example inputs (all (B,) tensors at run time):

    s_c       policy_chosen_logps - ref_chosen_logps              chosen log-ratio
    s_r       policy_rejected_logps - ref_rejected_logps          rejected log-ratio
    delta     s_c - s_r                                           the margin Δ
    s_c_avg   s_c / max(chosen_lengths, 1)                        per-token chosen log-ratio
    s_r_avg   s_r / max(rejected_lengths, 1)                      per-token rejected log-ratio
    pi_delta  policy_chosen_logps - policy_rejected_logps         the policy's own margin (PFL)

plus the scalar `beta` and numeric constants. Operators:

    unary     logsigmoid sigmoid exp log1p softplus relu tanh square abs neg
    batch     mean std          (over the batch: a (B,) input gives a 0-dim tensor, as in AQL)
    binary    add sub mul div   (div is guarded: |denominator| >= 1e-3 for tensor denominators)
    where     where(c > 0, a, b)

`exp` is evaluated as exp(min(x, 50)) so that it cannot overflow float32; `log1p` only takes an
argument that is nonnegative by construction. Trees are typed loosely: a *scalar* subtree (only
beta and constants, a Python float when beta is one) may use only arithmetic, a division needs a
tensor or a positive-scalar denominator, and the root must vary per example; `structural_problem`
states these rules and explains any breach.

This module holds the tree type, its JSON form (the `genome`), the canonical string used for exact
deduplication, size/depth accounting (`size` counts tree nodes; `dag_size` counts distinct
subtrees, what generated code computes and what the caps apply to), paths for editing, and a
light simplifier. It does not write Python (codegen.py), evaluate trees (evaluate.py) or choose
edits (operators.py).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from discovery.proposers.errors import GenomeError

__all__ = [
    "BATCH_OPS",
    "BINARY_OPS",
    "CONST",
    "DIV_EPS",
    "EXP_MAX",
    "GENOME_FORMAT",
    "LEAVES",
    "LENGTH_LEAVES",
    "TENSOR_LEAVES",
    "UNARY_OPS",
    "WHERE",
    "Node",
    "Path",
    "call",
    "canonical",
    "const",
    "dag_size",
    "decode_genome",
    "depth",
    "encode_genome",
    "from_json",
    "is_nonneg",
    "is_per_example",
    "is_scalar",
    "leaf",
    "leaves_used",
    "node_at",
    "replace_at",
    "simplify",
    "size",
    "structural_problem",
    "to_json",
    "walk",
]

TENSOR_LEAVES: tuple[str, ...] = ("delta", "s_c", "s_r", "s_c_avg", "s_r_avg", "pi_delta")
LENGTH_LEAVES: tuple[str, ...] = ("s_c_avg", "s_r_avg")  # need chosen/rejected_lengths
LEAVES: tuple[str, ...] = (*TENSOR_LEAVES, "beta")
CONST = "const"
UNARY_OPS: tuple[str, ...] = (
    "logsigmoid",
    "sigmoid",
    "exp",
    "log1p",
    "softplus",
    "relu",
    "tanh",
    "square",
    "abs",
    "neg",
)
BATCH_OPS: tuple[str, ...] = ("mean", "std")
BINARY_OPS: tuple[str, ...] = ("add", "sub", "mul", "div")
WHERE = "where"
COMMUTATIVE = frozenset({"add", "mul"})
ARITY: dict[str, int] = {
    **dict.fromkeys(LEAVES, 0),
    CONST: 0,
    **dict.fromkeys(UNARY_OPS + BATCH_OPS, 1),
    **dict.fromkeys(BINARY_OPS, 2),
    WHERE: 3,
}
# Ops whose value is >= 0 whatever their (valid) argument.
_NONNEG_OPS = frozenset({"sigmoid", "exp", "log1p", "softplus", "relu", "square", "abs", "std"})

EXP_MAX = 50.0  # exp(x) is computed as exp(min(x, EXP_MAX)): e^50 ~ 5e21 is far from float32 max
DIV_EPS = 1e-3  # a tensor denominator is kept at least this far from zero (sign preserved)
GENOME_FORMAT = "lossforge-expr/1"  # the `format` key of a genome written by this module
_JSON_MAX_DEPTH = 64  # deeper JSON is refused before any recursion can get deep

Path = tuple[int, ...]  # child indices from the root to a node; () is the root


@dataclass(frozen=True, repr=False)
class Node:
    """One node: a leaf name, `const` with a value, or an operator with its arguments."""

    op: str  # a name from LEAVES, CONST, or an operator name
    args: tuple[Node, ...] = ()  # operands, as many as ARITY[op]
    value: float | None = None  # the number, for CONST only

    def __post_init__(self) -> None:
        arity = ARITY.get(self.op)
        if arity is None:
            raise GenomeError(f"unknown op {self.op!r}; known: {', '.join(sorted(ARITY))}")
        if len(self.args) != arity:
            raise GenomeError(f"{self.op} takes {arity} argument(s), got {len(self.args)}")
        if self.op == CONST:
            if not isinstance(self.value, float) or not math.isfinite(self.value):
                raise GenomeError(f"a constant must be a finite float, got {self.value!r}")
        elif self.value is not None:
            raise GenomeError(f"only constants carry a value ({self.op} has {self.value!r})")

    def __repr__(self) -> str:
        return canonical(self)

    # Arithmetic sugar, so that seed trees read like formulas: -logsigmoid(BETA * DELTA).
    def __add__(self, other: Node | float) -> Node:
        return call("add", self, _as_node(other))

    def __radd__(self, other: float) -> Node:
        return call("add", _as_node(other), self)

    def __sub__(self, other: Node | float) -> Node:
        return call("sub", self, _as_node(other))

    def __rsub__(self, other: float) -> Node:
        return call("sub", _as_node(other), self)

    def __mul__(self, other: Node | float) -> Node:
        return call("mul", self, _as_node(other))

    def __rmul__(self, other: float) -> Node:
        return call("mul", _as_node(other), self)

    def __truediv__(self, other: Node | float) -> Node:
        return call("div", self, _as_node(other))

    def __rtruediv__(self, other: float) -> Node:
        return call("div", _as_node(other), self)

    def __neg__(self) -> Node:
        return call("neg", self)


def leaf(name: str) -> Node:
    if name not in LEAVES:
        raise GenomeError(f"unknown leaf {name!r}; known: {', '.join(LEAVES)}")
    return Node(name)


def const(value: float) -> Node:
    value = float(value)
    return Node(CONST, value=0.0 if value == 0 else value)  # no -0.0: one spelling per number


def call(op: str, *args: Node) -> Node:
    return Node(op, tuple(args))


def _as_node(x: Node | float) -> Node:
    return x if isinstance(x, Node) else const(x)


# -- traversal and editing ------------------------------------------------------------------------
def walk(node: Node, path: Path = ()) -> Iterator[tuple[Path, Node]]:
    """Every (path, subtree), pre-order (the root first)."""
    yield path, node
    for index, arg in enumerate(node.args):
        yield from walk(arg, (*path, index))


def node_at(tree: Node, path: Path) -> Node:
    for index in path:
        tree = tree.args[index]
    return tree


def replace_at(tree: Node, path: Path, new: Node) -> Node:
    """A copy of `tree` with the subtree at `path` replaced by `new` (trees are immutable)."""
    if not path:
        return new
    head, rest = path[0], path[1:]
    args = list(tree.args)
    args[head] = replace_at(args[head], rest, new)
    return Node(tree.op, tuple(args), tree.value)


def size(node: Node) -> int:
    """Number of nodes, leaves and constants included."""
    return 1 + sum(size(arg) for arg in node.args)


def dag_size(node: Node) -> int:
    """Number of distinct subtrees: the operations generated code computes (equal ones once)."""
    return len({subtree for _, subtree in walk(node)})


def depth(node: Node) -> int:
    """Levels: a leaf has depth 1."""
    return 1 + max((depth(arg) for arg in node.args), default=0)


def leaves_used(node: Node) -> frozenset[str]:
    return frozenset(n.op for _, n in walk(node) if n.op in LEAVES)


# -- typing ---------------------------------------------------------------------------------------
def is_scalar(node: Node) -> bool:
    """True when no per-example input occurs: beta and constants only (a float when beta is)."""
    return not any(n.op in TENSOR_LEAVES for _, n in walk(node))


def is_per_example(node: Node) -> bool:
    """True when a per-example input reaches this node other than through a batch statistic."""
    if node.op in TENSOR_LEAVES:
        return True
    if node.op in BATCH_OPS:
        return False
    return any(is_per_example(arg) for arg in node.args)


def is_nonneg(node: Node) -> bool:
    """Conservative: True only when the value is >= 0 for every input."""
    if node.op == CONST:
        return node.value is not None and node.value >= 0
    if node.op == "beta" or node.op in _NONNEG_OPS:
        return True
    if node.op in ("add", "mul", "div", "mean"):
        return all(is_nonneg(arg) for arg in node.args)
    if node.op == WHERE:
        return is_nonneg(node.args[1]) and is_nonneg(node.args[2])
    return False


def _is_positive_scalar(node: Node) -> bool:
    if node.op == CONST:
        return node.value is not None and node.value > 0
    if node.op == "beta":
        return True
    if node.op in ("add", "mul", "div"):
        return all(_is_positive_scalar(arg) for arg in node.args)
    return False


def structural_problem(tree: Node, *, max_nodes: int, max_depth: int) -> str | None:  # noqa: PLR0911
    """Why `tree` cannot be emitted as a loss, or None. Cheap; runs nothing."""
    nodes, levels = dag_size(tree), depth(tree)
    if nodes > max_nodes:
        return f"has {nodes} distinct nodes; the cap is {max_nodes}"
    if levels > max_depth:
        return f"is {levels} levels deep; the cap is {max_depth}"
    if not is_per_example(tree):
        return "does not vary per example (no s_c, s_r or delta outside a batch statistic)"
    for _, node in walk(tree):
        op, args = node.op, node.args
        if op in UNARY_OPS and op != "neg" and is_scalar(args[0]):
            return f"applies {op} to a scalar (beta/constants only); a float beta would break it"
        if op in BATCH_OPS and not is_per_example(args[0]):
            return f"takes the batch {op} of something that does not vary per example"
        if op == "log1p" and not is_nonneg(args[0]):
            return "takes log1p of an argument that may be negative"
        if op == "div" and is_scalar(args[1]) and not _is_positive_scalar(args[1]):
            return "divides by a scalar that may be zero or negative"
        if op == WHERE and is_scalar(args[0]):
            return "branches on a scalar; a condition must depend on the examples"
    return None


# -- canonical form and JSON ----------------------------------------------------------------------
def canonical(node: Node) -> str:
    """One string per tree up to the order of add/mul operands: `(add delta (neg s_r))`."""
    if node.op == CONST:
        return repr(node.value)
    if not node.args:
        return node.op
    parts = [canonical(arg) for arg in node.args]
    if node.op in COMMUTATIVE:
        parts.sort()
    return f"({node.op} {' '.join(parts)})"


def to_json(node: Node) -> Any:
    """JSON-ready form: a leaf is its name, a constant its number, an op `[op, *args]`."""
    if node.op == CONST:
        return node.value
    if not node.args:
        return node.op
    return [node.op, *(to_json(arg) for arg in node.args)]


def from_json(data: Any, _level: int = 0) -> Node:
    """Inverse of `to_json`; raises `GenomeError` naming what is wrong."""
    if _level > _JSON_MAX_DEPTH:
        raise GenomeError(f"expression is nested deeper than {_JSON_MAX_DEPTH} levels")
    if isinstance(data, bool):
        raise GenomeError("a boolean is not an expression")
    if isinstance(data, int | float):
        return const(data)
    if isinstance(data, str):
        return leaf(data)
    if isinstance(data, list) and data and isinstance(data[0], str):
        if data[0] in LEAVES or data[0] == CONST:
            raise GenomeError(f"{data[0]!r} is a leaf; write it as a bare name or number")
        return Node(data[0], tuple(from_json(arg, _level + 1) for arg in data[1:]))
    raise GenomeError(f"cannot read {type(data).__name__} {str(data)[:60]!r} as an expression")


def encode_genome(tree: Node) -> dict[str, Any]:
    """The genome `evolve` stores with a proposal; `decode_genome` reads it back."""
    return {"format": GENOME_FORMAT, "tree": to_json(tree)}


def decode_genome(genome: Any) -> Node:
    if not isinstance(genome, dict) or genome.get("format") != GENOME_FORMAT:
        raise GenomeError(f"not an expression genome (want a dict with format {GENOME_FORMAT!r})")
    return from_json(genome.get("tree"))


# -- simplification -------------------------------------------------------------------------------
def _safe_denominator(b: float) -> float:
    return min(b, -DIV_EPS) if b < 0 else max(b, DIV_EPS)


def _softplus(x: float) -> float:
    return x + math.log1p(math.exp(-x)) if x > 0 else math.log1p(math.exp(x))


_FOLD: dict[str, Callable[..., float]] = {
    "logsigmoid": lambda x: -_softplus(-x),
    "sigmoid": lambda x: 0.5 * (1.0 + math.tanh(0.5 * x)),
    "exp": lambda x: math.exp(min(x, EXP_MAX)),
    "log1p": lambda x: math.log1p(x) if x >= 0 else math.nan,
    "softplus": _softplus,
    "relu": lambda x: max(x, 0.0),
    "tanh": math.tanh,
    "square": lambda x: x * x,
    "abs": abs,
    "neg": lambda x: -x,
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / _safe_denominator(b),
}


def _is_const(node: Node, value: float) -> bool:
    return node.op == CONST and node.value == value


def simplify(node: Node) -> Node:  # noqa: PLR0911 - one rewrite rule per return
    """Fold constant arithmetic and drop no-ops (x + 0, x * 1, --x, where(c, a, a)); bottom-up.

    Only identities exact in floating point for finite values are used, so a simplified tree
    computes the same values as the original one (up to folding constants in double instead of
    float32). A tree that simplifies to a constant is then refused by `structural_problem`.
    """
    if not node.args:
        return node
    args = tuple(simplify(arg) for arg in node.args)
    op = node.op
    if op in _FOLD and all(arg.op == CONST for arg in args):
        folded = _FOLD[op](*(arg.value for arg in args))
        if math.isfinite(folded):
            return const(folded)
    if op == "neg" and args[0].op == "neg":
        return args[0].args[0]
    if op in ("add", "sub") and _is_const(args[1], 0.0):
        return args[0]
    if op == "add" and _is_const(args[0], 0.0):
        return args[1]
    if op in ("mul", "div") and _is_const(args[1], 1.0):
        return args[0]
    if op == "mul" and _is_const(args[0], 1.0):
        return args[1]
    if op == "sub" and args[0] == args[1]:
        return const(0.0)
    if op == "mul" and (_is_const(args[0], 0.0) or _is_const(args[1], 0.0)):
        return const(0.0)  # 0 * x: exact for finite x, and the caps keep x finite
    if op == WHERE and args[1] == args[2]:
        return args[1]
    if op == WHERE and args[0].op == CONST:
        return args[1] if (args[0].value or 0.0) > 0 else args[2]
    return Node(op, args)
