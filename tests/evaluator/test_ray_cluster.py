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

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ray_head import Cluster, free_ports, ray_head, user_env

LOSSFORGE = str(Path(sys.executable).parent / "lossforge")

HINGE_PLUS = """\
def loss(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps, beta):
    margin = (policy_chosen_logps - ref_chosen_logps) - (policy_rejected_logps - ref_rejected_logps)
    return -F.logsigmoid(beta * margin) + 0.1 * torch.relu(-margin)
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("cluster")
    with ray_head(root, num_cpus=1) as head:
        assert "Token authentication is enabled" in (root / "ray-start.log").read_text()
        yield head


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
        "token file": _evaluate(a, user_env(cluster.home, LOSSFORGE_RAY_ADDRESS=cluster.address)),
        "token setting": _evaluate(
            b,
            user_env(
                elsewhere,
                LOSSFORGE_RAY_ADDRESS=cluster.address,
                LOSSFORGE_RAY_AUTH_TOKEN=cluster.token,
            ),
        ),
    }
    for how, proc in runs.items():
        code, out, err = _finish(proc)
        assert code == 0, (how, err)
        assert cluster.joined_by(proc.pid), how  # the cluster's, not a local instance
        assert '"status": "DONE"' in out, how


def test_a_cluster_that_cannot_be_joined_gets_one_sentence_and_no_traceback(
    cluster: Cluster, tmp_path: Path
) -> None:
    (dead,) = free_ports(1)  # nothing listens there
    nobody = tmp_path / "nobody"
    nobody.mkdir()
    cases = {
        "no token": (user_env(nobody, LOSSFORGE_RAY_ADDRESS=cluster.address), cluster.address),
        "wrong token": (
            user_env(
                cluster.home,
                LOSSFORGE_RAY_ADDRESS=cluster.address,
                LOSSFORGE_RAY_AUTH_TOKEN="not-the-cluster-token",
            ),
            cluster.address,
        ),
        "dead address": (
            user_env(cluster.home, LOSSFORGE_RAY_ADDRESS=f"127.0.0.1:{dead}"),
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
