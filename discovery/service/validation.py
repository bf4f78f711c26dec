"""Validating loss source through the sandbox, for `lossforge validate`, `POST /api/validate` and
the API's shared validator.

The sandbox's text checks (size caps, UTF-8, hidden characters: sandbox/text.py) run first, on a
file's size before it is read and on the text before anything parses it, so an oversized or
unreadable input is refused without importing torch or starting a worker pool. Only text that
passes them reaches the sandbox (`Sandbox`, imported then: it loads torch).

It re-exports the sandbox's value types that its callers name (`Candidate`, `Verdict`,
`SandboxConfig`, `SandboxUnavailableError`), so the `api` package never imports `sandbox`. It
stores nothing and serves nothing: the CLI prints the verdict, the API returns it.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING

from sandbox import Candidate, SandboxConfig, SandboxUnavailableError, Verdict, text

if TYPE_CHECKING:
    from sandbox import Sandbox

__all__ = [
    "Candidate",
    "SandboxConfig",
    "SandboxUnavailableError",
    "SharedValidator",
    "Verdict",
    "read_candidate",
    "refusal",
    "validate_file",
]


def read_candidate(path: Path) -> Candidate | str:
    """A `.py` file is the loss code itself; anything else (JSON, a proposer's reply with a fenced
    block) goes to the sandbox's parser as text, which rejects it with a reason if it is neither."""
    source = path.read_text(encoding="utf-8", errors="replace")
    if path.suffix == ".py":
        return Candidate(name=path.stem, thought="", code=source)
    return source


def refusal(candidate: Candidate | str, config: SandboxConfig) -> Verdict | None:
    """The REJECTED verdict of the text checks (linear, microseconds, no torch), or None when the
    candidate may go on to the sandbox."""
    return text.refusal(candidate, max_source_bytes=config.max_source_bytes)


def validate_file(path: Path, config: SandboxConfig) -> Verdict:
    """The sandbox's verdict on the candidate in `path` (`.py`: the code; else a reply that holds
    it). A file over its cap is refused unread, text that fails the text checks before the
    sandbox starts; otherwise a sandbox is started for this one candidate and stopped after it.
    Raises SandboxUnavailableError when the sandbox cannot run."""
    is_code = path.suffix == ".py"
    cap = config.max_source_bytes * (1 if is_code else text.REPLY_CAP_FACTOR)
    size = path.stat().st_size
    if size > cap:
        problem = text.too_large(size, cap, "code" if is_code else "the reply")
        return text.rejected(path.stem if is_code else "candidate", problem)
    candidate = read_candidate(path)
    verdict = refusal(candidate, config)
    if verdict is not None:
        return verdict
    with _sandbox(config) as sandbox:
        return sandbox.validate(candidate)


class SharedValidator:
    """One sandbox pool shared by a server's requests, started on first use (it takes seconds and
    most servers never validate) and used by one request at a time."""

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self._sandbox: Sandbox | None = None
        self._lock = threading.Lock()

    def refusal(self, candidate: Candidate | str) -> Verdict | None:
        """The text checks' verdict, or None: call `validate`. Starts nothing."""
        return refusal(candidate, self.config)

    def validate(self, candidate: Candidate | str) -> Verdict:
        """The sandbox's verdict; blocks (run it off an event loop). SandboxUnavailableError when
        the pool cannot start."""
        with self._lock:
            if self._sandbox is None:
                sandbox = _sandbox(self.config)
                sandbox.start()
                self._sandbox = sandbox
            return self._sandbox.validate(candidate)

    def close(self) -> None:
        with self._lock:
            if self._sandbox is not None:
                self._sandbox.close()
                self._sandbox = None


def _sandbox(config: SandboxConfig) -> Sandbox:
    from sandbox import Sandbox  # noqa: PLC0415 (imports torch: only for text that passed)

    return Sandbox(config)
