"""Compile trusted test losses in the test process (only ever our own sources, never attacks)."""

from __future__ import annotations

import inspect
import json
import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from sandbox import graph_capture
from sandbox.graph import LossGraph, rebuild_graph


def define(source: str) -> tuple[Callable[..., Any], tuple[str, ...]]:
    namespace: dict[str, Any] = {"torch": torch, "F": F, "math": math}
    exec(compile(source, "<test-loss>", "exec"), namespace)
    fn = next(v for v in namespace.values() if inspect.isfunction(v))
    return fn, tuple(inspect.signature(fn).parameters)


def graph_data(source: str) -> dict[str, Any]:
    fn, names = define(source)
    return graph_capture.capture_graph(fn, names)


def rebuild(source: str) -> LossGraph:
    return rebuild_graph(json.dumps(graph_data(source)))


def call_node(target: str, *args: Any, op: str = "call_function", **kwargs: Any) -> dict[str, Any]:
    """A graph JSON node calling `target` (a forged or hand-written graph's building block)."""
    return {"op": op, "target": target, "args": list(args), "kwargs": kwargs}
