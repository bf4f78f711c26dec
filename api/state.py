"""What the app shares between requests, set up in `create_app` and read by the routers."""

from __future__ import annotations

import threading

from fastapi import Request

from api.boards import Boards
from api.launcher import Launcher
from sandbox import Candidate, Sandbox, SandboxConfig
from sandbox.verdict import Verdict


def boards_of(request: Request) -> Boards:
    return request.app.state.boards


def launcher_of(request: Request) -> Launcher:
    return request.app.state.launcher


class SharedSandbox:
    """One sandbox pool for `POST /api/validate`, started on first use (it takes seconds and
    most servers never validate) and used by one request at a time."""

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self._sandbox: Sandbox | None = None
        self._lock = threading.Lock()

    def validate(self, candidate: Candidate) -> Verdict:
        with self._lock:
            if self._sandbox is None:
                sandbox = Sandbox(self.config)
                sandbox.start()
                self._sandbox = sandbox
            return self._sandbox.validate(candidate)

    def close(self) -> None:
        with self._lock:
            if self._sandbox is not None:
                self._sandbox.close()
                self._sandbox = None


def sandbox_of(request: Request) -> SharedSandbox:
    return request.app.state.sandbox
