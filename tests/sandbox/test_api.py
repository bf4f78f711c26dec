"""The package's public surface: `__all__` is pinned, importing starts nothing."""

from __future__ import annotations

import subprocess
import sys

import sandbox
from sandbox import Sandbox, SandboxConfig, Verdict, VerdictStatus

PUBLIC = [
    "ALL_INPUTS",
    "BatteryLimits",
    "Candidate",
    "CandidateParseError",
    "GraphLimits",
    "GraphRejectedError",
    "LossGraph",
    "OPTIONAL_INPUTS",
    "REQUIRED_INPUTS",
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


def test_all_is_pinned() -> None:
    assert sorted(sandbox.__all__) == sorted(PUBLIC)
    for name in PUBLIC:
        assert hasattr(sandbox, name)


def test_import_starts_nothing_and_constructor_only_assigns() -> None:
    code = (
        "import threading, sandbox; s = sandbox.Sandbox(sandbox.SandboxConfig()); "
        "print(threading.active_count())"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "1"
    assert Sandbox(SandboxConfig())._pool is None


def test_config_is_validated() -> None:
    import pytest

    with pytest.raises(ValueError, match="pool_size"):
        SandboxConfig(pool_size=0)
    with pytest.raises(ValueError, match="timeout_s"):
        SandboxConfig(timeout_s=0)


def test_rejected_verdict_summary_is_one_line() -> None:
    verdict = Verdict(
        VerdictStatus.REJECTED, "x", sandbox.Stage.STATIC, sandbox.RejectionCode.DUNDER, "a\nb"
    )
    assert verdict.summary() == "REJECTED [static/dunder] a b"
    assert not verdict.accepted
