"""lossforge sandbox: validate untrusted loss candidates through five layers.

    from sandbox import Sandbox, SandboxConfig, parse_candidate, rebuild_graph

    with Sandbox(SandboxConfig()) as sandbox:
        verdict = sandbox.validate(parse_candidate(reply))
    if verdict.accepted:
        loss_module = rebuild_graph(verdict.graph_json)   # a torch.nn.Module: (**inputs) -> (B,)

Layers: 1 static AST checks (static.py), 2 a hardened single-use worker process (isolation.py,
zygote.py, hardening.py, seccomp_filter.py), 3 the behaviour battery (battery.py), 4 graph capture
and allow-list rebuild (graph_capture.py, graph.py), 5 the fingerprint (fingerprint.py). The loss
contract is in contract.py. Importing this package starts nothing and reads no environment.
"""

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
from sandbox.graph import LossGraph, rebuild_graph
from sandbox.validator import Sandbox
from sandbox.verdict import BatteryLimits, RejectionCode, Stage, Verdict, VerdictStatus

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
