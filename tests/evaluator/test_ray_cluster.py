"""`lossforge evaluate` on a Ray cluster started the default way: `ray start --head`.

Ray 2.60 turns token authentication on for such a cluster wherever a token exists
(`~/.ray/auth_token`). The module starts one cluster of its own (its own HOME with a token, its
own temp dir and ports), runs an evaluation on it as a user would, with the token found where
`ray start` found it or given in LOSSFORGE_RAY_AUTH_TOKEN, and checks that a missing or wrong
token and a dead address each get one sentence naming the address and the fix, with no
traceback. The cluster is stopped by its process group, never by `ray stop` (which stops every
Ray on the machine, the test session's included).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

BIN = Path(sys.executable).parent
LOSSFORGE, RAY = str(BIN / "lossforge"), str(BIN / "ray")

HINGE_PLUS = """\
def loss(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps, beta):
    margin = (policy_chosen_logps - ref_chosen_logps) - (policy_rejected_logps - ref_rejected_logps)
    return -F.logsigmoid(beta * margin) + 0.1 * torch.relu(-margin)
"""


@dataclass(frozen=True)
class Cluster:
    address: str
    token: str
    home: Path  # where `ray start` found the token (~/.ray/auth_token)


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _env(home: Path, **extra: str) -> dict[str, str]:
    """The environment of a user's shell with HOME `home`: no Ray or lossforge Ray settings of
    this test session (its own local Ray set RAY_AUTH_MODE in this process)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("RAY_", "LOSSFORGE_RAY_")) and k != "LOSSFORGE_DATABASE_URL"
    }
    return {**env, "HOME": str(home), **extra}


def _stop(group: int, temp_dir: Path) -> None:
    """Stop the cluster: its process group, then anything left that names its temp dir."""
    for sig, grace in ((signal.SIGTERM, 2.0), (signal.SIGKILL, 5.0)):  # a test's cluster
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


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("cluster")
    home, temp_dir = root / "home", root / "ray"
    home.mkdir()
    # A token in ~/.ray/auth_token, as any earlier local Ray run (or this command) leaves one.
    subprocess.run(
        [RAY, "get-auth-token", "--generate"], env=_env(home), capture_output=True, check=True
    )
    token = (home / ".ray" / "auth_token").read_text().strip()
    gcs, client, dashboard, agent, agent_grpc, metrics, runtime_env = _free_ports(7)
    log = (root / "ray-start.log").open("w")
    proc = subprocess.Popen(
        [
            RAY,
            "start",
            "--head",
            f"--port={gcs}",
            "--num-cpus=1",
            f"--temp-dir={temp_dir}",
            "--node-ip-address=127.0.0.1",
            "--include-dashboard=false",
            "--disable-usage-stats",
            # Ports of its own, so it can run beside other Ray instances on the machine.
            f"--ray-client-server-port={client}",
            f"--dashboard-port={dashboard}",
            f"--dashboard-agent-listen-port={agent}",
            f"--dashboard-agent-grpc-port={agent_grpc}",
            f"--metrics-export-port={metrics}",
            f"--runtime-env-agent-port={runtime_env}",
            "--block",
        ],
        env=_env(home),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: stopped as one below
    )
    try:
        deadline = time.monotonic() + 90
        while "Ray runtime started" not in (root / "ray-start.log").read_text():
            assert proc.poll() is None, (root / "ray-start.log").read_text()
            assert time.monotonic() < deadline, "ray start did not come up in 90 s"
            time.sleep(0.2)
        assert "Token authentication is enabled" in (root / "ray-start.log").read_text()
        yield Cluster(address=f"127.0.0.1:{gcs}", token=token, home=home)
    finally:
        _stop(proc.pid, temp_dir)
        proc.wait(timeout=10)
        log.close()


def _evaluate(tmp_path: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    (tmp_path / "mine.py").write_text(HINGE_PLUS)
    args = ["evaluate", "mine.py", "--stage=bandit", "--task=tabular", "--seeds=1", "--json"]
    return subprocess.Popen(
        [LOSSFORGE, *args],
        cwd=tmp_path,
        env={
            **env,
            "LOSSFORGE_DATABASE_URL": f"sqlite:///{tmp_path / 'a.db'}",
            "LOSSFORGE_CACHE_DIR": str(tmp_path / "cache"),
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(proc: subprocess.Popen[str]) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=300)
    return proc.returncode, out, err


def test_evaluate_runs_on_a_cluster_started_with_ray_start(
    cluster: Cluster, tmp_path: Path
) -> None:
    # The default way: the token is where `ray start` found it. And the way of a client on
    # another machine (docker compose): the token in LOSSFORGE_RAY_AUTH_TOKEN, no token file.
    elsewhere, a, b = tmp_path / "elsewhere", tmp_path / "a", tmp_path / "b"
    for d in (elsewhere, a, b):
        d.mkdir()
    runs = {  # side by side: each spends its seconds starting up
        "token file": _evaluate(a, _env(cluster.home, LOSSFORGE_RAY_ADDRESS=cluster.address)),
        "token setting": _evaluate(
            b,
            _env(
                elsewhere,
                LOSSFORGE_RAY_ADDRESS=cluster.address,
                LOSSFORGE_RAY_AUTH_TOKEN=cluster.token,
            ),
        ),
    }
    for how, proc in runs.items():
        code, out, err = _finish(proc)
        assert code == 0, (how, err)
        assert "Connected to Ray cluster" in err, how  # the cluster's, not a local instance
        assert '"status": "DONE"' in out, how


def test_a_cluster_that_cannot_be_joined_gets_one_sentence_and_no_traceback(
    cluster: Cluster, tmp_path: Path
) -> None:
    (dead,) = _free_ports(1)  # nothing listens there
    nobody = tmp_path / "nobody"
    nobody.mkdir()
    cases = {
        "no token": (_env(nobody, LOSSFORGE_RAY_ADDRESS=cluster.address), cluster.address),
        "wrong token": (
            _env(
                cluster.home,
                LOSSFORGE_RAY_ADDRESS=cluster.address,
                LOSSFORGE_RAY_AUTH_TOKEN="not-the-cluster-token",
            ),
            cluster.address,
        ),
        "dead address": (
            _env(cluster.home, LOSSFORGE_RAY_ADDRESS=f"127.0.0.1:{dead}"),
            f"127.0.0.1:{dead}",
        ),
    }
    procs = {}
    for i, (how, (env, _)) in enumerate(cases.items()):
        (tmp_path / str(i)).mkdir()
        procs[how] = _evaluate(tmp_path / str(i), env)
    for how, proc in procs.items():
        code, _, err = _finish(proc)
        address = cases[how][1]
        assert code == 1, (how, err)
        assert "Traceback" not in err, (how, err)
        [line] = [x for x in err.splitlines() if x.startswith("Error:")]
        assert address in line, (how, line)
        if how == "dead address":
            assert f"no Ray cluster answers at {address}" in line
            assert "LOSSFORGE_RAY_ADDRESS" in line
        else:
            assert "requires an authentication token" in line
            assert "LOSSFORGE_RAY_AUTH_TOKEN" in line and "ray get-auth-token" in line
