"""`lossforge evaluate`, run as a user runs it: sandbox, Ray, a report vs DPO.

The first test starts a local Ray, as a user's first run does; the others join the session's
cluster (`shared_ray`), which spares each a Ray start-up.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.ray_head import Cluster

LOSSFORGE = str(Path(sys.executable).parent / "lossforge")

HINGE_PLUS = """\
def loss(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps, beta):
    margin = (policy_chosen_logps - ref_chosen_logps) - (policy_rejected_logps - ref_rejected_logps)
    return -F.logsigmoid(beta * margin) + 0.1 * torch.relu(-margin)
"""

REWARDS_REJECTED = """\
def loss(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps, beta):
    margin = (policy_chosen_logps - ref_chosen_logps) - (policy_rejected_logps - ref_rejected_logps)
    return -F.logsigmoid(-beta * margin)
"""


def _run(
    tmp_path: Path, *args: str, ray: Cluster | None = None
) -> subprocess.CompletedProcess[str]:
    joined = ray.client_env() if ray is not None else {}
    return subprocess.run(
        [LOSSFORGE, "evaluate", *args],
        cwd=tmp_path,
        env={**os.environ, "LOSSFORGE_DATABASE_URL": f"sqlite:///{tmp_path / 'a.db'}", **joined},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_evaluate_reports_the_score_vs_dpo_per_task(tmp_path: Path) -> None:
    (tmp_path / "mine.py").write_text(HINGE_PLUS)
    result = _run(
        tmp_path,
        "mine.py",
        "--stage",
        "bandit",
        "--task",
        "tabular",
        "--task",
        "noisy",
        "--seeds",
        "2",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["candidate"] == "mine"
    assert report["metric"] == "frontier/area"
    assert set(report["tasks"]) == {"tabular", "noisy"}
    for row in report["tasks"].values():
        assert row["seeds"] == 2
        assert len(row["candidate_runs"]) == len(row["dpo_runs"]) == 2
        assert row["score"] is not None and row["spread"] >= 0.0
        diff = row["candidate_mean"] - row["dpo_mean"]
        assert abs(diff - row["score"]) < 1e-6  # the score is the paired mean difference
        assert row["n"] == 2 and row["score_low"] <= row["score"] <= row["score_high"]


def test_evaluate_confirms_on_fresh_seeds_public_and_held_out_apart(
    tmp_path: Path, shared_ray: Cluster
) -> None:
    (tmp_path / "mine.py").write_text(HINGE_PLUS)
    (tmp_path / "tiny.yaml").write_text(
        "max_steps: 4\nnum_train_pairs: 128\nnum_eval_pairs: 16\nnum_eval_prompts: 32\n"
        "frontier_betas: [0.5, 2.0]\n"
    )
    result = _run(
        tmp_path,
        "mine.py",
        "--stage",
        "tinylm",
        "--config",
        "tiny.yaml",
        "--task",
        "arithmetic",
        "--task",
        "sentiment",
        "--seeds",
        "2",
        "--seed-start",
        "7",
        "--json",
        ray=shared_ray,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["seeds"] == [7, 8]
    assert (
        report["tasks"]["sentiment"]["held_out"] and not report["tasks"]["arithmetic"]["held_out"]
    )
    for which, task in (("public", "arithmetic"), ("held_out", "sentiment")):
        pooled, row = report[which], report["tasks"][task]
        assert pooled["n"] == 2
        assert pooled["score"] == row["score"]  # one task of each kind: the same numbers
        assert pooled["score_low"] <= pooled["score"] <= pooled["score_high"]
    # DPO's runs carry its frontier: beta 1 and the two grid betas, KL and reward each.
    dpo = report["tasks"]["arithmetic"]["dpo_runs"][0]["metrics"]
    assert {k for k in dpo if k.startswith("frontier/")} == {
        f"frontier/beta={b}/{m}" for b in ("0.5", "1.0", "2.0") for m in ("kl", "reward")
    }


def test_a_rejected_loss_is_not_trained(tmp_path: Path) -> None:
    (tmp_path / "wrong.py").write_text(REWARDS_REJECTED)
    result = _run(tmp_path, "wrong.py", "--stage", "bandit")
    assert result.returncode == 1
    assert "REJECTED" in result.stdout and "rejected answer" in result.stdout


def test_unknown_tasks_are_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "mine.py").write_text(HINGE_PLUS)
    result = _run(tmp_path, "mine.py", "--stage", "tinylm", "--task", "chess")
    assert result.returncode == 2
    assert "unknown tinylm tasks ['chess']" in result.stderr


def test_the_hf_stage_needs_a_config(tmp_path: Path) -> None:
    (tmp_path / "mine.py").write_text(HINGE_PLUS)
    result = _run(tmp_path, "mine.py", "--stage", "hf")
    assert result.returncode == 2
    assert "--stage hf needs --config FILE" in result.stderr


def test_a_bad_stage_config_is_a_usage_error_naming_the_field(tmp_path: Path) -> None:
    (tmp_path / "mine.py").write_text(HINGE_PLUS)
    (tmp_path / "hf.yaml").write_text("dataset: prefs.jsonl\nbetas: [0.1]\n")
    result = _run(tmp_path, "mine.py", "--stage", "hf", "--config", "hf.yaml")
    assert result.returncode == 2
    assert "model: is required" in result.stderr
    (tmp_path / "tiny.json").write_text('{"max_steps": 8, "model": {"n_layr": 1}}')
    result = _run(tmp_path, "mine.py", "--stage", "tinylm", "--config", "tiny.json")
    assert result.returncode == 2
    assert "model.n_layr: unknown field; ModelConfig has [" in result.stderr  # parse_stage_config
    (tmp_path / "list.yaml").write_text("- max_steps\n")
    result = _run(tmp_path, "mine.py", "--stage", "bandit", "--config", "list.yaml")
    assert result.returncode == 2
    assert "must hold a mapping of stage config fields, not a list" in result.stderr


def test_a_stage_config_changes_what_the_runs_do(tmp_path: Path, shared_ray: Cluster) -> None:
    (tmp_path / "mine.py").write_text(HINGE_PLUS)
    (tmp_path / "bandit.yaml").write_text("max_steps: 3\nbeta_grid: [0.1]\n")
    args = ("mine.py", "--stage", "bandit", "--task", "tabular", "--seeds", "1", "--json")
    short = _run(tmp_path, *args, "--config", "bandit.yaml", ray=shared_ray)
    default = _run(tmp_path, *args, ray=shared_ray)
    assert short.returncode == default.returncode == 0, short.stderr + default.stderr
    runs = [
        json.loads(r.stdout.strip().splitlines()[-1])["tasks"]["tabular"]["dpo_runs"][0]
        for r in (short, default)
    ]
    # Three steps from the same start leave DPO's policy elsewhere than the default 300 do.
    assert runs[0]["metrics"]["reward/normalized"] != runs[1]["metrics"]["reward/normalized"]
