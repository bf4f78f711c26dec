"""bench/hf_gpu.py, the GPU check, runs its tiny CPU variant with the modules a GPU image lacks
made unimportable (Ray, SQLAlchemy, pydantic-settings, openai, pyseccomp, and lossforge's
discovery/api). pydantic itself is needed (carried to the GPU image): the hf stage's config is a
pydantic model (evaluator.hf.config)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
ABSENT = ("ray", "sqlalchemy", "pydantic_settings", "openai", "pyseccomp")
RUNNER = f"""
import runpy, sys
for name in {[*ABSENT, "discovery", "api"]!r}:
    sys.modules[name] = None  # `import name` now raises ImportError
sys.argv = ["bench/hf_gpu.py", "--tiny", "--out", sys.argv[1]]
runpy.run_path("bench/hf_gpu.py", run_name="__main__")
"""


def test_the_gpu_check_runs_tiny_on_cpu_without_server_packages(tmp_path: Path) -> None:
    out = tmp_path / "hf_gpu.json"
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", RUNNER, str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    report = json.loads(out.read_text())
    runs = {(r["mode"], r["loss"]): r for r in report["runs"]}
    assert set(runs) == {(m, loss) for m in ("full-bf16", "lora") for loss in ("dpo", "lrml")}
    for run in runs.values():
        assert run["status"] == "DONE", run["reason"]
        assert run["steps"] == 4 and run["steps_per_s"] > 0
        assert run["params_changed"] == 1.0
    assert runs["lora", "dpo"]["frozen_changed"] == 0.0
    assert set(report["lrml_minus_dpo"]) == {"full-bf16", "lora"}
    assert "all runs DONE" in proc.stdout
