"""Sandbox test fixtures: one warm worker pool per session, shared by Sandbox views.

Starting a pool costs a few seconds (the zygote imports torch and warms up), so one pool serves
every test; `Sandbox` objects with different configs (static layer on or off, a short timeout for
the tests that expect one) share it through the constructor. The parent's environment holds a
fake API key while the pool starts, so tests can check it never reaches a child.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from sandbox import Sandbox, SandboxConfig
from sandbox.isolation import WorkerPool
from tests.sandbox.sources import SECRET

# Generous: a loaded 2-core CI machine must never turn an honest candidate into a timeout.
TIMEOUT_S = 60.0
SHORT_TIMEOUT_S = 4.0  # only for candidates that are expected to time out


def make_config(**overrides: object) -> SandboxConfig:
    return SandboxConfig(**{"timeout_s": TIMEOUT_S, "pool_size": 2, **overrides})  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def pool() -> Iterator[WorkerPool]:
    previous = os.environ.get("LOSSFORGE_TEST_API_KEY")
    os.environ["LOSSFORGE_TEST_API_KEY"] = SECRET  # the parent holds a key; children must not
    workers = WorkerPool(make_config())
    try:
        workers.start()
        yield workers
    finally:
        workers.close()
        if previous is None:
            os.environ.pop("LOSSFORGE_TEST_API_KEY", None)
        else:
            os.environ["LOSSFORGE_TEST_API_KEY"] = previous


def _view(pool: WorkerPool, **overrides: object) -> Sandbox:
    sandbox = Sandbox(make_config(**overrides), pool=pool)
    sandbox.start()  # reuses the running pool; warms this process's graph code
    return sandbox


@pytest.fixture(scope="session")
def sandbox(pool: WorkerPool) -> Sandbox:
    """Every layer on."""
    return _view(pool)


@pytest.fixture(scope="session")
def sandbox_no_static(pool: WorkerPool) -> Sandbox:
    """Layer 1 switched off: layers 2-5 must hold on their own."""
    return _view(pool, static_checks=False)


@pytest.fixture(scope="session")
def sandboxes(pool: WorkerPool) -> dict[tuple[bool, bool], Sandbox]:
    """(static_checks, short_timeout) -> Sandbox on the shared pool."""
    return {
        (static_on, short): _view(
            pool, static_checks=static_on, timeout_s=SHORT_TIMEOUT_S if short else TIMEOUT_S
        )
        for static_on in (True, False)
        for short in (True, False)
    }


@dataclass
class Listener:
    """A TCP server on 127.0.0.1 that records every connection it accepts."""

    port: int
    connections: list[bytes] = field(default_factory=list)


@pytest.fixture(scope="session")
def listener() -> Iterator[Listener]:
    server = socket.create_server(("127.0.0.1", 0))
    state = Listener(port=server.getsockname()[1])

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(2)
                try:
                    state.connections.append(conn.recv(1024))
                except OSError:
                    state.connections.append(b"")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield state
    server.close()
