"""Layer 4, child side: trace a loss function with torch.fx and encode the graph as JSON data.

`capture_graph(fn, inputs)` symbolically traces `fn` (every argument, beta included, is a proxy,
so beta becomes a 0-dim tensor input) and returns a plain dict in the `lossforge-graph/1` format
that graph.py rebuilds:

    {"format": "lossforge-graph/1",
     "inputs": [contract names, contract order],
     "nodes": [{"op": "input", "name": ...},
               {"op": "constant", "dtype": "float32", "shape": [...], "values": [...]},
               {"op": "call_function", "target": "torch.exp" | "F.logsigmoid" | "operator.add"
                                                  | "getattr" | ..., "args": [...], "kwargs": {}},
               {"op": "call_method", "target": "clamp", "args": [...], "kwargs": {...}}],
     "output": {"node": index}}

Argument values: JSON numbers/bools/null, {"node": i} (an earlier node), {"float": "inf"},
{"str": s}, {"tuple": [...]}, {"list": [...]}, {"slice": [start, stop, step]},
{"ellipsis": true}, {"dtype": "float32"}. Callables not on the allow-list are encoded by their
qualified name, so the rebuild can say precisely why it refuses them.

This module runs only in the child and trusts nothing it produces: the parent re-validates every
field. It does not check the graph (graph.py does) and never pickles.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.fx

from sandbox.allowlist import graph_function_names
from sandbox.contract import canonical_inputs
from sandbox.errors import RejectionError
from sandbox.verdict import RejectionCode, Stage

GRAPH_FORMAT = "lossforge-graph/1"


def _graph_error(code: RejectionCode, reason: str) -> RejectionError:
    return RejectionError(Stage.GRAPH, code, reason)


def encode_float(value: float) -> float | dict[str, str]:
    if math.isfinite(value):
        return value
    return {"float": "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")}


def qualified_name(target: Callable[..., Any]) -> str:
    """Allow-list name of a callable, or 'module.qualname' for anything else."""
    known = graph_function_names().get(id(target))
    if known is not None:
        return known
    module = getattr(target, "__module__", None) or "?"
    name = getattr(target, "__qualname__", None) or getattr(target, "__name__", None) or "?"
    return f"{module}.{name}"[:120]


def _encode(value: object, index: dict[torch.fx.Node, int]) -> object:  # noqa: PLR0911
    if isinstance(value, torch.fx.Node):
        return {"node": index[value]}
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, str):
        return {"str": value}
    if isinstance(value, float):
        return encode_float(value)
    if isinstance(value, tuple):  # torch.Size is a tuple too
        return {"tuple": [_encode(v, index) for v in value]}
    if isinstance(value, list):
        return {"list": [_encode(v, index) for v in value]}
    if isinstance(value, slice):
        return {"slice": [_encode(v, index) for v in (value.start, value.stop, value.step)]}
    if value is Ellipsis:
        return {"ellipsis": True}
    if isinstance(value, torch.dtype):
        return {"dtype": str(value).removeprefix("torch.")}
    if isinstance(value, torch.device):
        raise _graph_error(
            RejectionCode.BAKED_DEVICE,
            f"the graph names device {str(value)!r}; derive devices from inputs "
            "(device=x.device) or use torch.*_like",
        )
    raise _graph_error(
        RejectionCode.TRACE_FAILED,
        f"an argument of type {type(value).__name__} cannot be captured; pass "
        "numbers, tensors, dtypes or slices",
    )


def _encode_constant(tensor: torch.Tensor) -> dict[str, object]:
    flat = tensor.detach().reshape(-1)
    values: list[object]
    if flat.dtype.is_floating_point:
        values = [encode_float(float(v)) for v in flat.tolist()]
    else:
        values = flat.tolist()
    return {
        "op": "constant",
        "dtype": str(tensor.dtype).removeprefix("torch."),
        "shape": list(tensor.shape),
        "values": values,
    }


def capture_graph(
    fn: Callable[..., Any], inputs: Sequence[str], max_constant_elements: int = 4096
) -> dict[str, object]:
    """Trace `fn` and encode its graph; raises `RejectionError` (stage GRAPH) if it cannot."""
    tracer = torch.fx.Tracer()
    try:
        graph = tracer.trace(fn)
    except RejectionError:
        raise
    except Exception as exc:  # candidate code boundary: tracing runs the candidate
        text = " ".join(str(exc).split())[:200]
        hint = (
            "use torch.where instead of Python if/while on tensors"
            if "control flow" in text or "iterate" in text or "bool" in text
            else "write the loss with torch ops on the arguments"
        )
        raise _graph_error(
            RejectionCode.TRACE_FAILED,
            f"cannot be captured as a graph ({type(exc).__name__}: {text}); "
            f"{hint} (beta is a 0-dim tensor inside graphs)",
        ) from None
    index: dict[torch.fx.Node, int] = {}
    nodes: list[dict[str, object]] = []
    output: object = None
    constant_elements = 0
    for node in graph.nodes:
        if node.op == "placeholder":
            entry: dict[str, object] = {"op": "input", "name": str(node.target)}
        elif node.op == "get_attr":
            value = getattr(tracer.root, str(node.target))
            if not isinstance(value, torch.Tensor):
                raise _graph_error(RejectionCode.TRACE_FAILED, "captured a non-tensor constant")
            constant_elements += value.numel()
            if constant_elements > max_constant_elements:
                raise _graph_error(
                    RejectionCode.GRAPH_TOO_LARGE,
                    f"tensor constants hold more than {max_constant_elements} "
                    "elements; a loss needs a few scalars",
                )
            entry = _encode_constant(value)
        elif node.op in ("call_function", "call_method"):
            target = node.target if node.op == "call_method" else qualified_name(node.target)
            entry = {
                "op": node.op,
                "target": str(target),
                "args": [_encode(a, index) for a in node.args],
                "kwargs": {k: _encode(v, index) for k, v in node.kwargs.items()},
            }
        elif node.op == "output":
            output = _encode(node.args[0], index)
            continue
        else:
            raise _graph_error(RejectionCode.UNKNOWN_OP, f"graph node {node.op} is not allowed")
        index[node] = len(nodes)
        nodes.append(entry)
    return {
        "format": GRAPH_FORMAT,
        "inputs": list(canonical_inputs(inputs)),
        "nodes": nodes,
        "output": output,
    }
