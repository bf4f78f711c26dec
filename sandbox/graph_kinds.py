"""Layer 4: what kind of value each graph node produces, decided before anything runs.

The meta-device check (graph_meta.py) executes a graph's Python-level operations for real: an
`operator.mul` on a `torch.Size` repeats a tuple, an `operator.pow` on two ints builds a big
integer. A forged graph could use that to exhaust the parent's memory or CPU before any size cap
applies. So the rebuild infers, from the op table alone, whether each node yields a tensor, a
Python number (from `x.shape[0]`, `x.dim()`), a shape, a tuple of tensors (`max(x, dim)`), a
dtype or a device, and `node_kind` refuses every Python-level operation that is not plain
arithmetic on numbers or involves a tensor. Number magnitudes are then bounded at run time by
graph_meta.py (one bounded step at a time, so repeated squaring stops at the first big result).

This module classifies; it does not build or run graphs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Any

import torch.fx

from sandbox.errors import GraphRejectedError
from sandbox.verdict import RejectionCode


class Kind(StrEnum):
    TENSOR = "tensor"
    NUMBER = "number"  # a Python int/float/bool computed from shapes
    SHAPE = "shape"  # torch.Size
    MULTI = "multi"  # a tuple of tensors: max/min/median with dim, std_mean, var_mean
    DTYPE = "dtype"
    DEVICE = "device"


_ATTRIBUTE_KINDS = {
    "shape": Kind.SHAPE,
    "dtype": Kind.DTYPE,
    "device": Kind.DEVICE,
    "ndim": Kind.NUMBER,
}
_NUMBER_OPERATORS = {
    "add",
    "sub",
    "mul",
    "truediv",
    "floordiv",
    "mod",
    "neg",
    "pos",
    "abs",
    "gt",
    "lt",
    "ge",
    "le",
    "eq",
    "ne",
}
_TUPLE_WITH_DIM = {"max", "min", "median"}  # tuples when given a dim, tensors otherwise
_ALWAYS_TUPLE = {"std_mean", "var_mean"}


def _reject(reason: str) -> GraphRejectedError:
    return GraphRejectedError(RejectionCode.UNKNOWN_OP, reason)


def _kind(value: object, kinds: Mapping[torch.fx.Node, Kind]) -> Kind | None:
    """Kind of an argument: a node's kind, NUMBER for a number literal, None for anything else."""
    if isinstance(value, torch.fx.Node):
        return kinds[value]
    if isinstance(value, bool | int | float):
        return Kind.NUMBER
    return None


def _has_dim(
    args: Sequence[Any], kwargs: Mapping[str, Any], kinds: Mapping[torch.fx.Node, Kind]
) -> bool:
    return "dim" in kwargs or (len(args) >= 2 and _kind(args[1], kinds) is Kind.NUMBER)


def node_kind(
    op: str,
    target: str,
    args: Sequence[Any],
    kwargs: Mapping[str, Any],
    kinds: Mapping[torch.fx.Node, Kind],
) -> Kind:
    """The kind a call node yields; raises `GraphRejectedError` for Python-level misuse."""
    if op == "call_method":
        return _method_kind(target, args, kwargs, kinds)
    if target == "getattr":
        return _attribute_kind(args, kinds)
    if target == "operator.getitem":
        return _item_kind(args, kinds)
    if target.startswith("operator.") or target == "abs":
        return _operator_kind(target, args, kinds)
    name = target.rsplit(".", 1)[-1]
    if name in _ALWAYS_TUPLE or (name in _TUPLE_WITH_DIM and _has_dim(args, kwargs, kinds)):
        return Kind.MULTI
    return Kind.TENSOR


def _method_kind(
    target: str, args: Sequence[Any], kwargs: Mapping[str, Any], kinds: Mapping[torch.fx.Node, Kind]
) -> Kind:
    if _kind(args[0], kinds) is not Kind.TENSOR:
        raise _reject(f"method .{target}() applied to a non-tensor graph value")
    if target == "size":
        return Kind.SHAPE if len(args) == 1 and not kwargs else Kind.NUMBER
    if target in ("dim", "numel"):
        return Kind.NUMBER
    if target in _TUPLE_WITH_DIM and _has_dim(args, kwargs, kinds):
        return Kind.MULTI
    return Kind.TENSOR


def _attribute_kind(args: Sequence[Any], kinds: Mapping[torch.fx.Node, Kind]) -> Kind:
    base = _kind(args[0], kinds)
    if base is Kind.TENSOR and args[1] in _ATTRIBUTE_KINDS:
        return _ATTRIBUTE_KINDS[args[1]]
    if base is Kind.MULTI and args[1] in ("values", "indices"):
        return Kind.TENSOR
    raise _reject(f"attribute .{args[1]} is not available on a graph value of kind {base}")


def _item_kind(args: Sequence[Any], kinds: Mapping[torch.fx.Node, Kind]) -> Kind:
    base, index = _kind(args[0], kinds), args[1]
    if base is Kind.TENSOR:
        return Kind.TENSOR
    if base is Kind.SHAPE:
        return Kind.SHAPE if isinstance(index, slice) else Kind.NUMBER
    if base is Kind.MULTI and _kind(index, kinds) is Kind.NUMBER:
        return Kind.TENSOR
    raise _reject("indexing is only allowed on tensors, shapes and tuples of tensors")


def _operator_kind(target: str, args: Sequence[Any], kinds: Mapping[torch.fx.Node, Kind]) -> Kind:
    operands = [_kind(a, kinds) for a in args]
    if Kind.TENSOR in operands and all(k in (Kind.TENSOR, Kind.NUMBER) for k in operands):
        return Kind.TENSOR
    name = target.rsplit(".", 1)[-1]
    if all(k is Kind.NUMBER for k in operands) and name in _NUMBER_OPERATORS:
        return Kind.NUMBER
    shown = ", ".join(str(k) for k in operands)
    raise _reject(
        f"{target} on Python values ({shown}) is not allowed; arithmetic in a graph works on "
        "tensors and on plain numbers"
    )
