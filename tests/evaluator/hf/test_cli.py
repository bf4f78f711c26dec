"""`lossforge evaluate --stage hf --config FILE`, run as a user runs it: a loss and DPO fine-tuned
with TRL on a local tiny model and local data, each beta of the grid a task. It joins the
package's Ray instance rather than starting its own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from evaluator.compare import stage_tasks
from evaluator.scoring import score_metric

LOSSFORGE = str(Path(sys.executable).parent / "lossforge")

SMOOTH_HINGE = """\
def loss(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps, beta):
    margin = (policy_chosen_logps - ref_chosen_logps) - (policy_rejected_logps - ref_rejected_logps)
    return -F.logsigmoid(beta * margin) + 0.1 * torch.relu(-margin)
"""


ONE_TASK = ("--task", "beta=0.5", "--seeds", "1", "--json")


def test_evaluate_runs_the_hf_stage_from_a_config_file(
    tmp_path: Path, hf_config: Callable[..., dict[str, Any]], ray_local: str
) -> None:
    config = hf_config(betas=[0.1, 0.5], max_steps=4)
    config.pop("beta")
    (tmp_path / "hf.yaml").write_text(yaml.safe_dump(config))
    (tmp_path / "mine.py").write_text(SMOOTH_HINGE)
    result = subprocess.run(
        [LOSSFORGE, "evaluate", "mine.py", "--stage", "hf", "--config", "hf.yaml", *ONE_TASK],
        cwd=tmp_path,
        env={
            **os.environ,
            "HF_HUB_OFFLINE": "1",
            "LOSSFORGE_DATABASE_URL": f"sqlite:///{tmp_path / 'a.db'}",
            "LOSSFORGE_RAY_ADDRESS": ray_local,
        },
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["stage"] == "hf" and report["candidate"] == "mine"
    assert report["metric"] == score_metric("hf", config)
    assert set(stage_tasks("hf", config)) == {"beta=0.1", "beta=0.5"}
    assert set(report["tasks"]) == {"beta=0.5"}  # --task picks one point of the grid
    row = report["tasks"]["beta=0.5"]
    assert row["seeds"] == 1
    for run in row["candidate_runs"] + row["dpo_runs"]:
        assert run["status"] == "DONE", run["reason"]
        assert report["metric"] in run["metrics"] and "kl/ref" in run["metrics"]
    assert abs(row["candidate_mean"] - row["dpo_mean"] - row["score"]) < 1e-9
