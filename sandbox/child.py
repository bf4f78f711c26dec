"""What a sandboxed child does with one job: define, check, capture and report (runs in the child).

`run_job(job)` compiles the candidate source in a namespace holding `torch`, `F` and `math`, finds
its one function and checks the signature (contract.py), runs the behaviour battery (layer 3) on
it, checks that torch's modules and global settings are unchanged (torch_state.py), captures the
graph (layer 4, child side) and validates it with the parent's own rebuild code so the proposer
gets a precise reason early, and computes the function's values on the fixed probe set, which
the parent later requires its rebuilt graph to reproduce. It returns the result message as a dict;
`RejectionError` raised anywhere becomes a failure message.

What it does not do: protect anything. It runs with full Python inside a hardened process
(isolation is hardening.py's and zygote.py's job) and its output is evidence the parent
re-checks, never a verdict the parent believes. The zygote also calls `warm_up()` so that every
forked child finds torch, fx and the battery already initialised.
"""

from __future__ import annotations

import builtins
import inspect
import math
import time
import types
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from sandbox import battery, graph_capture, probes, torch_state
from sandbox.config import GraphLimits
from sandbox.contract import Parameter, canonical_inputs, signature_problem
from sandbox.errors import RejectionError
from sandbox.graph import rebuild_from_data
from sandbox.graph_capture import encode_float
from sandbox.protocol import Job
from sandbox.verdict import RejectionCode, Stage

_FILENAME = "<candidate>"


def _fail(code: RejectionCode, reason: str) -> RejectionError:
    return RejectionError(Stage.BATTERY, code, reason)


def _find_function(namespace: dict[str, Any]) -> Callable[..., Any]:
    functions = [
        v
        for v in namespace.values()
        if isinstance(v, types.FunctionType)
        and v.__code__.co_filename == _FILENAME
        and "." not in v.__qualname__
    ]
    if len(functions) == 1:
        return functions[0]
    named = [f for f in functions if f.__name__ == "loss"]
    if len(named) == 1:
        return named[0]
    found = "no function" if not functions else f"{len(functions)} functions"
    raise _fail(
        RejectionCode.STRUCTURE, f"code defines {found}; define exactly one function, def loss(...)"
    )


def _inputs(fn: Callable[..., Any]) -> tuple[str, ...]:
    params = [
        Parameter(
            p.name,
            p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD,
            p.default is not inspect.Parameter.empty,
        )
        for p in inspect.signature(fn).parameters.values()
    ]
    problem = signature_problem(params)
    if problem is not None:
        raise _fail(RejectionCode.SIGNATURE, problem)
    return tuple(p.name for p in params)


def _define(source: str) -> Callable[..., Any]:
    try:
        code = compile(source, _FILENAME, "exec")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        line = getattr(exc, "lineno", None)
        raise RejectionError(
            Stage.PARSE,
            RejectionCode.SYNTAX_ERROR,
            f"line {line}: {getattr(exc, 'msg', type(exc).__name__)}; send valid Python",
        ) from None
    namespace: dict[str, Any] = {
        "torch": torch,
        "F": F,
        "math": math,
        "__name__": "candidate",
        "__builtins__": builtins,
    }
    try:
        exec(code, namespace)
    except Exception as exc:  # candidate code boundary: module-level code ran
        raise battery.classify_exception(exc, "while defining the function") from None
    return _find_function(namespace)


def run_job(job: Job) -> dict[str, Any]:
    """The result message for `job`: {"ok": true, ...} or {"ok": false, stage, code, reason}."""
    timings: dict[str, float] = {}
    try:
        before = torch_state.snapshot()
        start = time.perf_counter()
        fn = _define(job.source)
        inputs = _inputs(fn)
        # An early look for a precise reason; the parent's full run on the graph decides.
        battery.run_battery(fn, inputs, full=False)
        torch_state.compare(before)
        timings["battery_ms"] = 1e3 * (time.perf_counter() - start)
        start = time.perf_counter()
        graph = graph_capture.capture_graph(fn, inputs, job.limits.max_constant_elements)
        torch_state.compare(before)
        rebuild_from_data(graph, job.limits)
        timings["capture_ms"] = 1e3 * (time.perf_counter() - start)
        values = []
        for batch in probes.value_probes():
            with torch.no_grad():
                out = battery.call_loss(fn, probes.select(batch, inputs), "probe set")
            values.append([encode_float(v) for v in out.tolist()])
        torch_state.compare(before)
    except RejectionError as exc:
        return {"ok": False, "stage": str(exc.stage), "code": str(exc.code), "reason": exc.reason}
    return {
        "ok": True,
        "inputs": list(canonical_inputs(inputs)),
        "graph": graph,
        "values": values,
        "timings": timings,
    }


WARM_UP_SOURCES = (
    # DPO, and a batch-statistic loss touching where/std/mean/clamp/quantile/optional inputs, so
    # the fx tracer, autograd, meta kernels and the probe caches are initialised before the
    # zygote forks. A hardened child cannot import (it is chrooted into an empty directory), so
    # every op whose first use imports a module must run here: quantile's meta kernel imports
    # torch._subclasses.schema_check_mode (tests/sandbox/test_validator.py checks the allow-list).
    "def loss(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps,"
    " beta):\n    z = beta * ((policy_chosen_logps - ref_chosen_logps)"
    " - (policy_rejected_logps - ref_rejected_logps))\n    return -F.logsigmoid(z)\n",
    "def loss(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps,"
    " beta, chosen_lengths, refs_chosen_logps):\n"
    "    z = beta * ((policy_chosen_logps - refs_chosen_logps.mean(dim=0))"
    " - (policy_rejected_logps - ref_rejected_logps)) / torch.clamp(chosen_lengths, min=1)\n"
    "    w = torch.sigmoid(z.std() * torch.tensor(0.05)) + torch.quantile(z, 0.75)\n"
    "    return torch.where(z > 0, w * F.softplus(-z), torch.relu(1 - z) + torch.exp(-z).mean())\n",
)


def warm_up() -> None:
    """Run the whole child pipeline on known-good losses (in the zygote, before forking)."""
    limits = GraphLimits()
    # First trace and meta run import torch._dynamo, which rewraps torch.manual_seed and friends:
    # do that once here, outside the state check, so children see a settled torch.
    fn = _define(WARM_UP_SOURCES[0])
    rebuild_from_data(graph_capture.capture_graph(fn, _inputs(fn)), limits)
    for source in WARM_UP_SOURCES:
        result = run_job(Job(source=source, limits=limits))
        if not result["ok"]:
            raise RuntimeError(f"sandbox warm-up failed: {result['reason']}")
