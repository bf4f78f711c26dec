"""Fixtures of the API tests: the app served by a real uvicorn on loopback, engines as real
processes on one local Ray per module, and a launcher that only records (for the tests that must
not start engines, such as the fuzzer, which would otherwise start a campaign for every valid spec
it generates)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from api.app import create_app
from api.launcher import Launcher
from api.routers.campaigns import EXAMPLE_SPEC
from api.settings import Settings
from discovery.archive import Archive

# The API's own example spec (the one its OpenAPI document shows), under the tests' name.
SMALL_SPEC = {**EXAMPLE_SPEC, "name": "api-test"}


class RecordingLauncher(Launcher):
    """Starts nothing; remembers which campaigns it was asked to start."""

    def __init__(self) -> None:
        super().__init__(env={}, log_dir=Path("/nonexistent"))
        self.started: list[int] = []

    def start(self, campaign_id: int) -> None:
        self.started.append(campaign_id)


def recording(_: Archive) -> Launcher:
    return RecordingLauncher()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Served:
    app: FastAPI
    base_url: str
    settings: Settings

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=60.0)


@pytest.fixture
def serve() -> Iterator[Callable[[Settings], Served]]:
    """serve(settings, launcher=None) -> the app on a real uvicorn server on loopback."""
    servers: list[tuple[uvicorn.Server, threading.Thread]] = []

    def start(settings: Settings, launcher: Callable[[Archive], Launcher] | None = None) -> Served:
        app = create_app(settings, launcher=launcher)
        port = free_port()
        server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 60
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                pytest.fail("the API server did not start")
            time.sleep(0.05)
        servers.append((server, thread))
        return Served(app, f"http://127.0.0.1:{port}", settings)

    yield start
    for server, thread in servers:
        server.should_exit = True
        thread.join(timeout=120)
