"""A Ray cluster started the way a user starts one (`ray start --head`), for tests.

It gets its own HOME (holding the token that `ray start` turns token authentication on with), its
own temp dir and its own ports, so it runs beside any other Ray instance on the machine (a test
session's local one, or another pytest-xdist worker's). It is stopped through its process group,
never with `ray stop`, which would stop every Ray on the machine.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil

RAY = str(Path(sys.executable).parent / "ray")


@dataclass(frozen=True)
class Cluster:
    address: str
    token: str
    home: Path  # where `ray start` found the token (~/.ray/auth_token)
    temp_dir: Path  # its sessions' files: logs/python-core-driver-<job>_<pid>.log per client

    def joined_by(self, pid: int) -> bool:
        """Whether the process `pid` connected to this cluster as a driver (Ray keeps a log
        file per driver, named with its pid, in the cluster's session folder)."""
        return any(self.temp_dir.glob(f"session_*/logs/python-core-driver-*_{pid}.log"))

    def client_env(self) -> dict[str, str]:
        """What a lossforge process needs to join it (the token given, not read from HOME)."""
        return {"LOSSFORGE_RAY_ADDRESS": self.address, "LOSSFORGE_RAY_AUTH_TOKEN": self.token}


def free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def user_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment of a user's shell with HOME `home`: no Ray or lossforge Ray settings of
    this test session (a local Ray in this process sets RAY_AUTH_MODE), no archive."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("RAY_", "LOSSFORGE_RAY_")) and k != "LOSSFORGE_DATABASE_URL"
    }
    return {**env, "HOME": str(home), **extra}


@contextlib.contextmanager
def ray_head(root: Path, *, num_cpus: int) -> Iterator[Cluster]:
    """`ray start --head --block` with its HOME under `root`; yields the cluster once it is up."""
    home = root / "home"
    home.mkdir(parents=True)
    # Ray's session files hold Unix sockets, whose paths may not pass 107 bytes: a short folder
    # of its own in /tmp, not under pytest's (deep under xdist: .../popen-gw0/...).
    temp_dir = Path(tempfile.mkdtemp(prefix="lf-ray-", dir="/tmp"))
    # A token in ~/.ray/auth_token, as any earlier local Ray run (or this command) leaves one.
    subprocess.run(
        [RAY, "get-auth-token", "--generate"], env=user_env(home), capture_output=True, check=True
    )
    token = (home / ".ray" / "auth_token").read_text().strip()
    gcs, client, dashboard, agent, agent_grpc, metrics, runtime_env = free_ports(7)
    log_path = root / "ray-start.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [
                RAY,
                "start",
                "--head",
                f"--port={gcs}",
                f"--num-cpus={num_cpus}",
                f"--temp-dir={temp_dir}",
                "--node-ip-address=127.0.0.1",
                "--include-dashboard=false",
                "--disable-usage-stats",
                f"--ray-client-server-port={client}",
                f"--dashboard-port={dashboard}",
                f"--dashboard-agent-listen-port={agent}",
                f"--dashboard-agent-grpc-port={agent_grpc}",
                f"--metrics-export-port={metrics}",
                f"--runtime-env-agent-port={runtime_env}",
                "--block",
            ],
            env=user_env(home),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopped as one below
        )
    try:
        deadline = time.monotonic() + 120
        while "Ray runtime started" not in log_path.read_text():
            if proc.poll() is not None:
                raise RuntimeError(f"`ray start` exited:\n{log_path.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"`ray start` not up in 120 s:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.2)
        yield Cluster(address=f"127.0.0.1:{gcs}", token=token, home=home, temp_dir=temp_dir)
    finally:
        _stop(proc.pid, temp_dir)
        proc.wait(timeout=10)
        shutil.rmtree(temp_dir, ignore_errors=True)


def _stop(group: int, temp_dir: Path) -> None:
    """Stop the cluster: its process group, then anything left that names its temp dir."""
    for sig, grace in ((signal.SIGTERM, 2.0), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, sig)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and _members(group, temp_dir):
            time.sleep(0.2)
    for proc in _members(group, temp_dir):
        with contextlib.suppress(psutil.Error):
            proc.kill()


def _members(group: int, temp_dir: Path) -> list[psutil.Process]:
    out = []
    for proc in psutil.process_iter(["pid", "cmdline", "status"]):
        with contextlib.suppress(psutil.Error):
            if proc.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            if os.getpgid(proc.pid) == group or str(temp_dir) in " ".join(
                proc.info["cmdline"] or []
            ):
                out.append(proc)
    return out
