"""Evaluate an expression tree directly with torch, op for op as codegen.py writes it.

`evaluate(tree, inputs)` takes the contract's keyword arguments (the four (B,) log-prob tensors,
`beta` as a float or 0-dim tensor, and `chosen_lengths`/`rejected_lengths` when the tree uses
per-token leaves) and returns what the generated `loss` would return, bit for bit on the same
machine: the same leaf definitions, the guarded `exp` and division, and equal subtrees computed
once. Gradients flow through it as through the generated code.

It exists so that the proposer can screen trees without ever executing source text (the sandbox
is the only place that runs code). It does not check the tree; call `structural_problem` first.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from typing import Any

import torch
import torch.nn.functional as F

from discovery.proposers.evolve.expr import (
    CONST,
    DIV_EPS,
    EXP_MAX,
    LEAVES,
    WHERE,
    Node,
    is_nonneg,
    is_scalar,
)

__all__ = ["evaluate", "leaf_values"]

Value = Any  # a torch.Tensor, or a float for scalar subtrees when beta is a float

_UNARY: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "logsigmoid": F.logsigmoid,
    "sigmoid": torch.sigmoid,
    "exp": lambda x: torch.exp(torch.clamp(x, max=EXP_MAX)),
    "log1p": torch.log1p,
    "softplus": F.softplus,
    "relu": torch.relu,
    "tanh": torch.tanh,
    "square": torch.square,
    "abs": torch.abs,
    "mean": torch.mean,
    "std": torch.std,
}
_BINARY: dict[str, Callable[[Value, Value], Value]] = {
    "add": operator.add,
    "sub": operator.sub,
    "mul": operator.mul,
    "div": operator.truediv,  # scalar denominators only: tensor ones go through _safe
}


def leaf_values(inputs: Mapping[str, Any]) -> dict[str, Value]:
    """Every leaf the inputs allow, as codegen.py defines them (per-token ones need lengths)."""
    s_c = inputs["policy_chosen_logps"] - inputs["ref_chosen_logps"]  # (B,)
    s_r = inputs["policy_rejected_logps"] - inputs["ref_rejected_logps"]  # (B,)
    values: dict[str, Value] = {
        "s_c": s_c,
        "s_r": s_r,
        "delta": s_c - s_r,
        "pi_delta": inputs["policy_chosen_logps"] - inputs["policy_rejected_logps"],
        "beta": inputs["beta"],
    }
    if "chosen_lengths" in inputs:
        values["s_c_avg"] = s_c / torch.clamp(inputs["chosen_lengths"], min=1)
    if "rejected_lengths" in inputs:
        values["s_r_avg"] = s_r / torch.clamp(inputs["rejected_lengths"], min=1)
    return values


def _safe(denominator: torch.Tensor, nonneg: bool) -> torch.Tensor:
    if nonneg:
        return torch.clamp(denominator, min=DIV_EPS)
    return torch.where(
        denominator < 0,
        torch.clamp(denominator, max=-DIV_EPS),
        torch.clamp(denominator, min=DIV_EPS),
    )


def evaluate(tree: Node, inputs: Mapping[str, Any]) -> Value:
    """The per-example losses of `tree` on `inputs`, (B,)."""
    leaves = leaf_values(inputs)
    memo: dict[Node, Value] = {}

    def run(node: Node) -> Value:
        if node in memo:
            return memo[node]
        op = node.op
        if op == CONST:
            out: Value = node.value
        elif op in leaves:
            out = leaves[op]
        elif op in LEAVES:
            raise ValueError(f"the tree uses {op}: pass chosen_lengths and rejected_lengths")
        elif op == "neg":
            out = -run(node.args[0])
        elif op == WHERE:
            cond, a, b = (run(arg) for arg in node.args)
            out = torch.where(cond > 0, a, b)
        elif op in _UNARY:
            out = _UNARY[op](run(node.args[0]))
        elif op == "div" and not is_scalar(node.args[1]):
            out = run(node.args[0]) / _safe(run(node.args[1]), is_nonneg(node.args[1]))
        else:
            out = _BINARY[op](run(node.args[0]), run(node.args[1]))
        memo[node] = out
        return out

    return run(tree)
