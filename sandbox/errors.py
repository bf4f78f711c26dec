"""Exceptions of the sandbox package.

    SandboxError                    base of everything this package raises
    ├── CandidateParseError         a proposer reply holds no candidate (no JSON "code", no fence)
    ├── RejectionError              a candidate failed a check; carries stage, code and reason
    │   └── GraphRejectedError      `rebuild_graph` refused graph JSON (or a LossGraph an input)
    └── SandboxUnavailableError     the worker pool cannot run candidates (start failed, it died)

`Sandbox.validate` never raises for a bad candidate: `RejectionError` is how the layers report
to the validator, which turns it into a REJECTED verdict. Only `SandboxUnavailableError` (an
infrastructure fault, not a verdict on the candidate) escapes `validate`. `GraphRejectedError`
escapes `rebuild_graph`, the entry point for processes that receive graph JSON from elsewhere.

This module defines no behaviour beyond carrying these fields.
"""

from __future__ import annotations

from sandbox.verdict import RejectionCode, Stage


class SandboxError(Exception):
    """Base class for errors raised by the sandbox package."""


class CandidateParseError(SandboxError, ValueError):
    """The text is neither a JSON candidate nor a reply with a fenced code block."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class RejectionError(SandboxError):
    """A candidate failed one check: `stage` and `code` classify it, `reason` tells the proposer."""

    def __init__(self, stage: Stage, code: RejectionCode, reason: str) -> None:
        super().__init__(f"[{stage}/{code}] {reason}")
        self.stage = stage
        self.code = code
        self.reason = reason


class GraphRejectedError(RejectionError):
    """Graph JSON that does not rebuild against the op allow-list, or fails its size checks."""

    def __init__(self, code: RejectionCode, reason: str) -> None:
        super().__init__(Stage.GRAPH, code, reason)


class SandboxUnavailableError(SandboxError):
    """The isolated worker pool cannot run candidates; call `Sandbox.start()` or check the log."""
