"""Layer 4, parent side: rebuild graph JSON against the op allow-list into a `LossGraph` module.

`rebuild_graph(graph_json)` is the only way graph JSON becomes runnable: the validator uses it on
what a child reports, and trainers (Ray workers) use it on what they receive. It refuses, with a
`GraphRejectedError` naming the fault: JSON over the size cap or malformed; an op that is not on the
allow-list (UNKNOWN_OP); in-place methods (MUTABLE_OP); `.item()`-style reads and math.* on
traced values (VALUE_READ); factories without `device=<graph value>` and device methods
(BAKED_DEVICE); a call whose arguments, by position or keyword, do not fit the op's signature or
set an in-place flag, `out=`, `requires_grad`, a foreign device or a non-dtype dtype (checked by
graph_schema.py); more nodes than the cap (GRAPH_TOO_LARGE); an output that is not
exactly one tensor of shape (B,) (BAD_OUTPUT); intermediates over the element caps, checked by
running the graph on the meta device (TENSOR_TOO_LARGE). Node names in the JSON are never used as
code: the fx graph is built from our own names and allow-listed callables, and every reference
must point to an earlier node, so the graph is a DAG by construction.

A `LossGraph` takes the contract's argument names as keyword arguments and returns (B,) losses;
it re-runs the meta-device size check (graph_meta.py) for every new input shape before
computing, so no input shape can make it allocate past the caps, and refuses a call that edited
an input or a constant in place (version counters), so its constants cannot drift across calls.
This module does not trace (graph_capture.py) and never executes candidate source.
"""

from __future__ import annotations

import json
import math
from typing import Any

import torch
import torch.fx

from sandbox import allowlist as al
from sandbox.config import GraphLimits
from sandbox.contract import OPTIONAL_INPUTS, REQUIRED_INPUTS, canonical_inputs
from sandbox.errors import GraphRejectedError
from sandbox.graph_capture import GRAPH_FORMAT
from sandbox.graph_kinds import Kind, node_kind
from sandbox.graph_meta import check_on_meta, meta_inputs
from sandbox.graph_schema import check_call
from sandbox.verdict import RejectionCode

_DTYPES = {
    name: getattr(torch, name)
    for name in ("float32", "float64", "float16", "bfloat16", "int64", "int32", "bool")
}
_MAX_ARG_DEPTH = 4
_MAX_ARG_ITEMS = 64
_STRINGS = al.STRING_CONSTANTS | al.TENSOR_ATTRIBUTES
_NODE_KEYS = {
    "input": {"op", "name"},
    "constant": {"op", "dtype", "shape", "values"},
    "call_function": {"op", "target", "args", "kwargs"},
    "call_method": {"op", "target", "args", "kwargs"},
}
_SHAPE_CACHE_SIZE = 64


def _reject(code: RejectionCode, reason: str) -> GraphRejectedError:
    return GraphRejectedError(code, reason)


def _malformed(reason: str) -> GraphRejectedError:
    return _reject(RejectionCode.MALFORMED_GRAPH, f"malformed graph JSON: {reason}")


class LossGraph(torch.nn.Module):
    """A rebuilt loss. `forward(**inputs)` takes the names in `input_names` and returns (B,)."""

    def __init__(
        self,
        graph_module: torch.fx.GraphModule,
        input_names: tuple[str, ...],
        graph_json: str,
        limits: GraphLimits,
    ) -> None:
        super().__init__()
        self.graph_module = graph_module
        self.input_names = input_names
        self.graph_json = graph_json
        self.limits = limits
        self._checked_shapes: set[tuple[object, ...]] = set()

    @property
    def optional_inputs(self) -> tuple[str, ...]:
        """The optional contract inputs (lengths, K references) this loss takes."""
        return tuple(n for n in self.input_names if n in OPTIONAL_INPUTS)

    def forward(self, **inputs: Any) -> torch.Tensor:
        missing = [n for n in self.input_names if n not in inputs]
        unexpected = [n for n in inputs if n not in self.input_names]
        if missing or unexpected:
            raise TypeError(
                f"LossGraph takes {list(self.input_names)}; missing {missing}, "
                f"unexpected {unexpected}"
            )
        args = dict(inputs)
        policy = args["policy_chosen_logps"]
        if not isinstance(args["beta"], torch.Tensor):  # beta is a 0-dim tensor inside graphs
            args["beta"] = torch.tensor(
                float(args["beta"]), dtype=policy.dtype, device=policy.device
            )
        key = tuple((n, tuple(args[n].shape), args[n].dtype) for n in self.input_names)
        if key not in self._checked_shapes:
            check_on_meta(self.graph_module, {n: args[n] for n in self.input_names}, self.limits)
            if len(self._checked_shapes) >= _SHAPE_CACHE_SIZE:
                self._checked_shapes.clear()
            self._checked_shapes.add(key)
        inputs = {n: args[n] for n in self.input_names}
        # The rebuild refuses every in-place op it can name; the version counters catch any it
        # cannot, so neither the caller's tensors nor the graph's constants drift across calls.
        watched = [
            t for t in (*inputs.values(), *self.graph_module.buffers()) if not t.is_inference()
        ]
        versions = [t._version for t in watched]
        out = self.graph_module(**inputs)
        if any(t._version != v for t, v in zip(watched, versions, strict=True)):
            raise _reject(
                RejectionCode.MUTABLE_OP,
                "the graph edited an input or one of its constants in place while running; "
                "a loss must compute new tensors",
            )
        return out


def rebuild_graph(graph_json: str, limits: GraphLimits | None = None) -> LossGraph:
    """Rebuild graph JSON into a `LossGraph`; raises `GraphRejectedError` with a specific reason."""
    limits = limits or GraphLimits()
    size = len(graph_json.encode("utf-8", errors="replace"))
    if size > limits.max_json_bytes:
        raise _reject(
            RejectionCode.GRAPH_TOO_LARGE,
            f"graph JSON is {size} bytes; the cap is {limits.max_json_bytes}",
        )
    try:
        data = json.loads(graph_json)
    except (ValueError, RecursionError) as exc:
        raise _malformed(f"not JSON ({type(exc).__name__})") from None
    return rebuild_from_data(data, limits)


def rebuild_from_data(data: object, limits: GraphLimits) -> LossGraph:
    """Rebuild already-parsed graph JSON data (see `rebuild_graph`)."""
    if not isinstance(data, dict) or set(data) != {"format", "inputs", "nodes", "output"}:
        raise _malformed("expected an object with format, inputs, nodes, output")
    if data["format"] != GRAPH_FORMAT:
        raise _malformed(f"format must be {GRAPH_FORMAT!r}")
    inputs = data["inputs"]
    if (
        not isinstance(inputs, list)
        or not all(isinstance(n, str) for n in inputs)
        or tuple(inputs) != canonical_inputs(inputs)
        or len(set(inputs)) != len(inputs)
        or tuple(inputs[: len(REQUIRED_INPUTS)]) != REQUIRED_INPUTS
    ):
        raise _malformed("inputs must be the contract's argument names in contract order")
    nodes = data["nodes"]
    if not isinstance(nodes, list):
        raise _malformed("nodes must be a list")
    inputs_seen = sum(1 for n in nodes if isinstance(n, dict) and n.get("op") == "input")
    operations = len(nodes) - inputs_seen
    if operations > limits.max_nodes:
        raise _reject(
            RejectionCode.GRAPH_TOO_LARGE,
            f"graph has {operations} operations; the cap is {limits.max_nodes}: write a "
            "simpler loss",
        )
    try:
        builder = _Builder(tuple(inputs), limits)
        for position, node in enumerate(nodes):
            builder.add(position, node)
        builder.finish(data["output"])
        graph_json = json.dumps(data, sort_keys=True, separators=(",", ":"), allow_nan=False)
        module = builder.module()
    except GraphRejectedError:
        raise
    except (
        TypeError,
        ValueError,
        KeyError,
        IndexError,
        OverflowError,
        RecursionError,
        RuntimeError,
    ) as exc:  # untrusted JSON of a shape the checks above did not foresee
        raise _malformed(f"{type(exc).__name__} while rebuilding") from None
    graph = LossGraph(module, tuple(inputs), graph_json, limits)
    sample = meta_inputs(graph.input_names, limits.meta_batch_size, limits.meta_num_refs)
    check_on_meta(graph.graph_module, sample, limits)
    return graph


class _Builder:
    """Turns validated JSON nodes into an fx graph with our own node names."""

    def __init__(self, inputs: tuple[str, ...], limits: GraphLimits) -> None:
        self.graph = torch.fx.Graph()
        self.root = torch.nn.Module()
        self.limits = limits
        self.placeholders = {name: self.graph.placeholder(name) for name in inputs}
        self.values: list[torch.fx.Node] = []
        self.kinds: dict[torch.fx.Node, Kind] = {}  # what each value is, before anything runs
        self.constant_elements = 0
        self.functions = al.graph_functions()

    def add(self, position: int, node: object) -> None:
        if (
            not isinstance(node, dict)
            or not isinstance(node.get("op"), str)
            or (node["op"] not in _NODE_KEYS)
        ):
            raise _malformed(f"node {position} has no known op")
        if set(node) != _NODE_KEYS[node["op"]]:
            raise _malformed(f"node {position} must have exactly {sorted(_NODE_KEYS[node['op']])}")
        op = node["op"]
        if op == "input":
            if not isinstance(node["name"], str) or node["name"] not in self.placeholders:
                raise _malformed(f"node {position} names an unknown input")
            self.values.append(self.placeholders[node["name"]])
            self.kinds[self.values[-1]] = Kind.TENSOR
        elif op == "constant":
            self.values.append(self._constant(position, node))
            self.kinds[self.values[-1]] = Kind.TENSOR
        else:
            target = node["target"]
            if (
                not isinstance(target, str)
                or not isinstance(node["args"], list)
                or not isinstance(node["kwargs"], dict)
            ):
                raise _malformed(f"node {position} needs a string target, args list, kwargs object")
            args = tuple(self._arg(a, position, 0) for a in node["args"])
            kwargs = {str(k): self._arg(v, position, 0) for k, v in node["kwargs"].items()}
            callee = (
                self._function(target, args, kwargs)
                if op == "call_function"
                else (self._method(target, args, kwargs))
            )
            kind = node_kind(op, target, args, kwargs, self.kinds)
            self.values.append(
                self.graph.create_node(op, callee, args, kwargs, name=f"n{position}")
            )
            self.kinds[self.values[-1]] = kind

    def _constant(self, position: int, node: dict[str, Any]) -> torch.fx.Node:
        dtype = _DTYPES.get(node["dtype"]) if isinstance(node["dtype"], str) else None
        shape, values = node["shape"], node["values"]
        if (
            dtype is None
            or not isinstance(shape, list)
            or not isinstance(values, list)
            or not all(type(d) is int and d >= 0 for d in shape)
        ):
            raise _malformed(f"constant {position} needs a known dtype, a shape and values")
        count = math.prod(shape)
        self.constant_elements += len(values)
        if self.constant_elements > self.limits.max_constant_elements:
            raise _reject(
                RejectionCode.GRAPH_TOO_LARGE,
                f"tensor constants hold more than {self.limits.max_constant_elements} "
                "elements; a loss needs a few scalars",
            )
        if count != len(values):
            raise _malformed(f"constant {position} has {len(values)} values for shape {shape}")
        decoded = [_number(v, position) for v in values]
        name = f"c{position}"
        self.root.register_buffer(name, torch.tensor(decoded, dtype=dtype).reshape(shape))
        return self.graph.get_attr(name)

    def _arg(self, value: object, position: int, depth: int) -> Any:  # noqa: PLR0911, PLR0912
        if depth > _MAX_ARG_DEPTH:
            raise _malformed(f"arguments of node {position} nest too deeply")
        if value is None or isinstance(value, bool | int | float):
            return _number(value, position) if isinstance(value, float) else value
        if not isinstance(value, dict) or len(value) != 1:
            raise _malformed(f"node {position} has an argument of unknown form")
        ((kind, payload),) = value.items()
        if kind == "node":
            if (
                not isinstance(payload, int)
                or isinstance(payload, bool)
                or not (0 <= payload < len(self.values))
            ):
                raise _malformed(f"node {position} refers to a node that does not precede it")
            return self.values[payload]
        if kind == "float":
            return _number(value, position)
        if kind == "str":
            if not isinstance(payload, str) or payload not in _STRINGS:
                raise _malformed(f"node {position} passes a string outside the allow-list")
            return payload
        if kind == "dtype":
            if not isinstance(payload, str) or payload not in _DTYPES:
                raise _malformed(f"node {position} names an unknown dtype")
            return _DTYPES[payload]
        if kind == "ellipsis" and payload is True:
            return Ellipsis
        if kind in ("tuple", "list", "slice") and isinstance(payload, list):
            if len(payload) > _MAX_ARG_ITEMS or (kind == "slice" and len(payload) != 3):
                raise _malformed(f"node {position} has an oversized sequence argument")
            items = [self._arg(v, position, depth + 1) for v in payload]
            return (
                tuple(items)
                if kind == "tuple"
                else (list(items) if kind == "list" else slice(*items))
            )
        raise _malformed(f"node {position} has an argument of unknown kind {kind!r}")

    def _function(self, target: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if target not in self.functions:
            if target.startswith("math.") or target in (
                "builtins.float",
                "builtins.int",
                "builtins.bool",
                "builtins.round",
            ):
                raise _reject(
                    RejectionCode.VALUE_READ,
                    f"{target} reads a tensor value into Python; use the torch op "
                    "(e.g. torch.log) on tensors, beta included",
                )
            raise _reject(RejectionCode.UNKNOWN_OP, f"op {target} is not on the allow-list")
        check_call("call_function", target, self.functions[target], args, kwargs, self.kinds)
        name = target.rsplit(".", 1)[-1]
        if (
            target.startswith("torch.")
            and name in al.FACTORY_FUNCTIONS
            and kwargs.get("device") is None  # check_call: any device is a graph value's own
        ):
            raise _reject(
                RejectionCode.BAKED_DEVICE,
                f"{target} creates a tensor on a fixed device; pass device=x.device or "
                "use torch.*_like",
            )
        if target == "getattr" and (len(args) != 2 or args[1] not in al.TENSOR_ATTRIBUTES):
            raise _reject(
                RejectionCode.UNKNOWN_OP,
                "only .shape, .dtype, .device, .ndim, .values "
                "and .indices may be read from graph values",
            )
        return self.functions[target]

    def _method(self, target: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
        if target in al.VALUE_READ_METHODS:
            raise _reject(
                RejectionCode.VALUE_READ,
                f".{target}() reads a tensor value into "
                "Python; keep values as tensors (use torch.where for choices)",
            )
        if target in al.DEVICE_METHODS:
            raise _reject(RejectionCode.BAKED_DEVICE, f".{target}() moves to a fixed device")
        if al.is_mutating_method(target):
            raise _reject(
                RejectionCode.MUTABLE_OP,
                f".{target}() edits a tensor in place; use .{target[:-1]}()",
            )
        if target not in al.TENSOR_METHODS:
            raise _reject(RejectionCode.UNKNOWN_OP, f"method .{target}() is not on the allow-list")
        if not args or not isinstance(args[0], torch.fx.Node):
            raise _malformed(f"method .{target}() needs a graph value as self")
        check_call("call_method", target, None, args, kwargs, self.kinds)
        return target

    def finish(self, output: object) -> None:
        if not (isinstance(output, dict) and set(output) == {"node"}):
            shown = (
                f"a tuple of {len(output['tuple'])}"
                if isinstance(output, dict) and isinstance(output.get("tuple"), list)
                else "something else"
            )
            raise _reject(
                RejectionCode.BAD_OUTPUT,
                f"the graph returns {shown}; it must return "
                "exactly one tensor of per-example losses, shape (B,)",
            )
        result = self._arg(output, len(self.values), 0)
        if self.kinds.get(result) is not Kind.TENSOR:
            raise _reject(
                RejectionCode.BAD_OUTPUT,
                f"the graph returns a {self.kinds.get(result)}; it must return exactly one "
                "tensor of per-example losses, shape (B,)",
            )
        self.graph.output(result)

    def module(self) -> torch.fx.GraphModule:
        try:
            self.graph.lint()
            return torch.fx.GraphModule(self.root, self.graph)
        except Exception as exc:  # fx's own consistency checks; the graph is at fault
            raise _malformed(f"{type(exc).__name__}: {str(exc)[:160]}") from None


def _number(value: object, position: int) -> float | int:
    if isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value
    if (
        isinstance(value, dict)
        and set(value) == {"float"}
        and value["float"] in ("inf", "-inf", "nan")
    ):
        return float(value["float"])
    raise _malformed(f"node {position} has a non-numeric value")
