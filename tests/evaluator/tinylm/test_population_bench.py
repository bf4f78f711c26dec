"""bench/population.py, the GPU benchmark, runs on CPU and stays importable on a bare GPU machine.

The GPU machine has torch, transformers, tokenizers, numpy and nvidia-ml-py, and no trl, ray,
sqlalchemy or openai: the benchmark must not import them. It does need pydantic (with
pydantic-core, annotated-types and typing-inspection, carried to that machine): the tinylm
stage's configs are pydantic models (evaluator.stage_configs). This runs it for real (two
small populations, two steps) and checks what it imported and what it wrote; no timing is
asserted.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
ABSENT_ON_GPU_MACHINE = ("trl", "ray", "sqlalchemy", "openai", "datasets", "pyseccomp")

RUN_AND_LIST_IMPORTS = """
import runpy, sys, json
sys.argv = ["bench/population.py", *sys.argv[1:]]
runpy.run_path("bench/population.py", run_name="__main__")
print(json.dumps(sorted({m.split(".")[0] for m in sys.modules})))
"""


def test_the_population_benchmark_runs_and_imports_only_what_a_gpu_machine_has(
    tinylm_cache: Path, tmp_path: Path
) -> None:
    out = tmp_path / "population.json"
    argv = ["--k", "1,3", "--steps", "2", "--repeats", "1", "--max-sequential", "2"]
    argv += ["--cache-dir", str(tinylm_cache), "--out", str(out)]
    proc = subprocess.run(
        [sys.executable, "-c", RUN_AND_LIST_IMPORTS, *argv],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    imported = set(json.loads(proc.stdout.strip().splitlines()[-1]))
    assert not imported & set(ABSENT_ON_GPU_MACHINE), imported & set(ABSENT_ON_GPU_MACHINE)
    numbers = json.loads(out.read_text())
    assert numbers["device"] == "cpu" and [r["k"] for r in numbers["results"]] == [1, 3]
    for row in numbers["results"]:
        assert row["population_cand_steps_per_s"] > 0 and row["sequential_cand_steps_per_s"] > 0
        assert row["max_rel_loss_difference"] < 1e-4  # the population trained what it timed
        assert row["population_peak_mem_mb"] >= 0
