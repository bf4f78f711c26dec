"""lossforge sandbox: validate untrusted loss candidates through five layers.

    from sandbox import Sandbox, SandboxConfig, parse_candidate, rebuild_graph

    with Sandbox(SandboxConfig()) as sandbox:
        verdict = sandbox.validate(parse_candidate(reply))
    if verdict.accepted:
        loss_module = rebuild_graph(verdict.graph_json)   # a torch.nn.Module: (**inputs) -> (B,)

Layers: 1 static AST checks (static.py), 2 a hardened single-use worker process (isolation.py,
zygote.py, hardening.py, seccomp_filter.py), 3 the behaviour battery (battery.py), 4 graph capture
and allow-list rebuild (graph_capture.py, graph.py), 5 the fingerprint (fingerprint.py). The loss
contract is in contract.py. Importing this package starts nothing and reads no environment, and
it imports torch only when `Sandbox`, `LossGraph` or `rebuild_graph` is first used, so entry
points can refuse unreadable input (text.py) without loading it.
"""

import importlib
from typing import TYPE_CHECKING

from sandbox.config import GraphLimits, SandboxConfig
from sandbox.contract import (
    ALL_INPUTS,
    OPTIONAL_INPUTS,
    REQUIRED_INPUTS,
    Candidate,
    parse_candidate,
)
from sandbox.errors import (
    CandidateParseError,
    GraphRejectedError,
    RejectionError,
    SandboxError,
    SandboxUnavailableError,
)
from sandbox.verdict import BatteryLimits, RejectionCode, Stage, Verdict, VerdictStatus

if TYPE_CHECKING:
    from sandbox.graph import LossGraph, rebuild_graph
    from sandbox.validator import Sandbox

_TORCH_BACKED = {
    "LossGraph": "sandbox.graph",
    "rebuild_graph": "sandbox.graph",
    "Sandbox": "sandbox.validator",
}


def __getattr__(name: str) -> object:
    """The torch-backed names, imported on first use (PEP 562)."""
    module = _TORCH_BACKED.get(name)
    if module is None:
        raise AttributeError(f"module 'sandbox' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups find it without this hook
    return value


__all__ = [
    "ALL_INPUTS",
    "OPTIONAL_INPUTS",
    "REQUIRED_INPUTS",
    "BatteryLimits",
    "Candidate",
    "CandidateParseError",
    "GraphLimits",
    "GraphRejectedError",
    "LossGraph",
    "RejectionCode",
    "RejectionError",
    "Sandbox",
    "SandboxConfig",
    "SandboxError",
    "SandboxUnavailableError",
    "Stage",
    "Verdict",
    "VerdictStatus",
    "parse_candidate",
    "rebuild_graph",
]
