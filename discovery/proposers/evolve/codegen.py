"""Write an expression tree as contract source (DESIGN.md section 2), or as a short formula.

`to_source(tree)` gives the code an LLM would have written for the same loss:

    def loss(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps,
             beta):
        chosen_logratios = policy_chosen_logps - ref_chosen_logps  # s_c, (B,)
        ...
        return -F.logsigmoid(beta * delta)

Only the leaves a tree uses are defined, `chosen_lengths`/`rejected_lengths` are parameters only
when a per-token leaf needs them, repeated or long subexpressions get a local name (so equal
subtrees are computed once), and only `torch.*`/`F.*` names on the sandbox's allow-list appear.
Operator semantics follow expr.py exactly (guarded exp and division), and evaluate.py mirrors this
module op for op, so the tree, its code and its graph agree.

`describe(node)` writes the compact formula used in proposal thoughts (`relu(1 - beta*delta)`).
This module only writes text; it never runs what it writes.
"""

from __future__ import annotations

from collections import Counter

from discovery.proposers.evolve.expr import (
    BINARY_OPS,
    CONST,
    DIV_EPS,
    EXP_MAX,
    LEAVES,
    WHERE,
    Node,
    canonical,
    is_nonneg,
    is_scalar,
    leaves_used,
    walk,
)
from sandbox.contract import REQUIRED_INPUTS

__all__ = ["LEAF_VARIABLES", "describe", "to_source"]

_ATOM, _UNARY, _MUL, _ADD = 100, 90, 80, 70
_SYMBOL = {"add": ("+", _ADD), "sub": ("-", _ADD), "mul": ("*", _MUL), "div": ("/", _MUL)}
_CALL = {
    "logsigmoid": "F.logsigmoid",
    "sigmoid": "torch.sigmoid",
    "log1p": "torch.log1p",
    "softplus": "F.softplus",
    "relu": "torch.relu",
    "tanh": "torch.tanh",
    "square": "torch.square",
    "abs": "torch.abs",
    "mean": "torch.mean",
    "std": "torch.std",
}
# Variable name of each leaf in generated code, and the line that defines it.
LEAF_VARIABLES: dict[str, str] = {
    "s_c": "chosen_logratios",
    "s_r": "rejected_logratios",
    "delta": "delta",
    "s_c_avg": "chosen_avg",
    "s_r_avg": "rejected_avg",
    "pi_delta": "policy_delta",
    "beta": "beta",
}
_LEAF_LINES: dict[str, str] = {
    "s_c": "chosen_logratios = policy_chosen_logps - ref_chosen_logps  # s_c, (B,)",
    "s_r": "rejected_logratios = policy_rejected_logps - ref_rejected_logps  # s_r, (B,)",
    "delta": "delta = chosen_logratios - rejected_logratios  # Δ = s_c - s_r, (B,)",
    "s_c_avg": (
        "chosen_avg = chosen_logratios / torch.clamp(chosen_lengths, min=1)  # per token, (B,)"
    ),
    "s_r_avg": ("rejected_avg = rejected_logratios / torch.clamp(rejected_lengths, min=1)  # (B,)"),
    "pi_delta": "policy_delta = policy_chosen_logps - policy_rejected_logps  # (B,)",
}
_LEAF_NEEDS = {"delta": ("s_c", "s_r"), "s_c_avg": ("s_c",), "s_r_avg": ("s_r",)}
_LENGTH_PARAMS = {"s_c_avg": "chosen_lengths", "s_r_avg": "rejected_lengths"}
# Local names for hoisted subexpressions: well-known ones by value, the rest by op.
_KNOWN_NAMES = {
    "(mul beta delta)": "logits",
    "(mul beta s_c)": "chosen_rewards",
    "(mul beta s_r)": "rejected_rewards",
}
_OP_NAMES = {"add": "total", "sub": "diff", "mul": "prod", "div": "ratio", WHERE: "branch"}
_HOIST_CHARS = 72  # a subexpression longer than this becomes a local variable


def _number(value: float) -> str:
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


class _Writer:
    """Renders one tree; collects the assignment lines of hoisted subexpressions."""

    def __init__(self, tree: Node, *, code: bool) -> None:
        self.code = code
        # References to each distinct subtree from distinct parents: > 1 means computed once
        # and shared, so it gets a local name.
        self.refs: Counter[Node] = Counter()
        for parent in {node for _, node in walk(tree)}:
            self.refs.update(parent.args)
        self.texts: dict[Node, tuple[str, int]] = {}
        self.names: dict[Node, str] = {}
        self.lines: list[str] = []
        self.used: set[str] = set()

    def render(self, node: Node, *, top: bool = False) -> tuple[str, int]:
        """(text, precedence) of `node`; in code, shared or long subexpressions become locals."""
        if node in self.names:
            return self.names[node], _ATOM
        if node not in self.texts:
            text, prec = self._text(node)
            if self.code and len(text) > _HOIST_CHARS:
                for child in self._rendered_children(node):  # name the parts, then re-render
                    if child.args and child not in self.names:
                        self.hoist(child, self.texts[child][0])
                text, prec = self._text(node)
            self.texts[node] = text, prec
        text, prec = self.texts[node]
        long = len(text) > _HOIST_CHARS or self.refs[node] > 1
        if self.code and not top and node.args and long:
            return self.hoist(node, text), _ATOM
        return text, prec

    @staticmethod
    def _rendered_children(node: Node) -> tuple[Node, ...]:
        if node.op == WHERE and node.args[0].op == "neg":
            return (node.args[0].args[0], *node.args[1:])
        return node.args

    def hoist(self, node: Node, text: str) -> str:
        """Assign `text` to a fresh local named after what it computes; return the name."""
        known = _KNOWN_NAMES.get(canonical(node))
        base = known or _OP_NAMES.get(node.op, node.op)
        name, index = base, 1
        while name in self.used or (known is None and index == 1):
            name = f"{base}_{index}"
            if name not in self.used:
                break
            index += 1
        self.used.add(name)
        self.lines.append(f"{name} = {text}")
        self.names[node] = name
        return name

    def _text(self, node: Node) -> tuple[str, int]:  # noqa: PLR0911 - one case per op kind
        op, args = node.op, node.args
        if op == CONST:
            assert node.value is not None
            return _number(node.value), (_UNARY if node.value < 0 else _ATOM)
        if op in LEAVES:
            return (LEAF_VARIABLES[op] if self.code else op), _ATOM
        if op == "neg":
            text, prec = self.render(args[0])
            if prec < _UNARY or text.startswith("-"):
                text = f"({text})"
            return f"-{text}", _UNARY
        if op in BINARY_OPS:
            return self._binary(node)
        if op == WHERE:
            return self._where(node)
        inner, _ = self.render(args[0])
        if op == "exp":
            if self.code:
                return f"torch.exp(torch.clamp({inner}, max={EXP_MAX!r}))", _ATOM
            return f"exp({inner})", _ATOM
        name = _CALL[op] if self.code else op
        return f"{name}({inner})", _ATOM

    def _binary(self, node: Node) -> tuple[str, int]:
        symbol, prec = _SYMBOL[node.op]
        a, b = node.args
        left, left_prec = self.render(a)
        if left_prec < prec:
            left = f"({left})"
        if node.op == "div" and self.code and not is_scalar(b):
            right = self._safe_denominator(b)
        else:
            text, right_prec = self.render(b)
            needs = right_prec <= prec or text.startswith("-")
            right = f"({text})" if needs else text
        joiner = " " if self.code or node.op in ("add", "sub") else ""  # plain: beta*delta
        return f"{left}{joiner}{symbol}{joiner}{right}", prec

    def _safe_denominator(self, node: Node) -> str:
        """A tensor denominator kept DIV_EPS away from zero, sign preserved (as evaluate.py)."""
        text, _ = self.render(node)
        if node.args and node not in self.names:
            text = self.hoist(node, text)
        eps = repr(DIV_EPS)
        if is_nonneg(node):
            return f"torch.clamp({text}, min={eps})"
        return (
            f"torch.where({text} < 0, torch.clamp({text}, max=-{eps}), "
            f"torch.clamp({text}, min={eps}))"
        )

    def _where(self, node: Node) -> tuple[str, int]:
        cond, a, b = node.args
        if cond.op == "neg":  # -x > 0 is x < 0, exactly
            test = f"{self.render(cond.args[0])[0]} < 0"
        else:
            test = f"{self.render(cond)[0]} > 0"
        if_true, if_false = self.render(a)[0], self.render(b)[0]
        name = "torch.where" if self.code else "where"
        return f"{name}({test}, {if_true}, {if_false})", _ATOM


def to_source(tree: Node) -> str:
    """Contract source for `tree`: one `def loss(...)` using only allow-listed names."""
    writer = _Writer(tree, code=True)
    writer.used.update(LEAF_VARIABLES.values())
    result, _ = writer.render(tree, top=True)
    used = leaves_used(tree)
    needed = set(used)
    for name in used:
        needed.update(_LEAF_NEEDS.get(name, ()))
    params = list(REQUIRED_INPUTS)
    params += [_LENGTH_PARAMS[name] for name in ("s_c_avg", "s_r_avg") if name in used]
    header = f"def loss({', '.join(params)}):"
    if len(header) > 100:
        header = "def loss(\n" + "".join(f"    {p},\n" for p in params) + "):"
    body = [_LEAF_LINES[name] for name in _LEAF_LINES if name in needed]
    body += writer.lines
    body.append(f"return {result}")
    return header + "\n" + "".join(f"    {line}\n" for line in body)


def describe(node: Node, limit: int = 48) -> str:
    """A compact formula for thoughts, cut to `limit` characters with an ellipsis."""
    text, _ = _Writer(node, code=False).render(node, top=True)
    return text if len(text) <= limit else text[: limit - 1] + "…"
