"""Jobs as typed data: worker values are fields, resources and timeouts come from the config, and
the catalogue of tasks matches the stages that define them."""

from __future__ import annotations

import subprocess
import sys

from evaluator.bandit import FAMILIES
from evaluator.catalogue import BANDIT_FAMILIES, TINYLM_TASKS, stage_tasks
from evaluator.compare import plan
from evaluator.job import EvalJob, job_resources, stage_timeout
from evaluator.secrets import Secret
from evaluator.stage_configs import BanditConfig, parse_stage_config
from evaluator.tinylm import TASKS

HF = {"model": "gpt2", "dataset": "prefs.jsonl"}
LIGHT = ("evaluator.stage_configs", "evaluator.job", "evaluator.catalogue", "evaluator.compare")


def test_the_catalogue_matches_the_stages() -> None:
    assert tuple(FAMILIES) == BANDIT_FAMILIES
    assert dict(TINYLM_TASKS) == {name: task.held_out for name, task in TASKS.items()}
    assert stage_tasks("bandit") == dict.fromkeys(FAMILIES, False)
    assert stage_tasks("hf", {**HF, "betas": [0.1, 1], "held_out": True}) == {
        "beta=0.1": True,
        "beta=1.0": True,
    }


def test_light_modules_import_no_torch() -> None:
    code = (
        "import importlib, sys\n"
        f"for name in {LIGHT!r}:\n"
        "    importlib.import_module(name)\n"
        "print(sorted(m for m in ('torch', 'transformers', 'ray') if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_plan_builds_typed_jobs_carrying_the_worker_values() -> None:
    jobs = plan(
        stage="hf",
        tasks=["beta=0.1"],
        seeds=[0, 1],
        candidate=("mine", "{}"),
        baseline=("dpo", "{}"),
        config=HF,
        judge_api_key=Secret("sk-job-1"),
    )
    assert len(jobs) == 4 and all(job.config == parse_stage_config("hf", HF) for job in jobs)
    assert all(job.judge_api_key == Secret("sk-job-1") for job in jobs)
    assert "sk-job-1" not in repr(jobs)
    tinylm = plan(
        stage="tinylm",
        tasks=["sorting"],
        seeds=[0],
        candidate=("mine", "{}"),
        baseline=("dpo", "{}"),
        config={"max_steps": 2},
        cache_dir="/tmp/refs",
    )
    assert [j.frontier for j in tinylm] == [False, True]
    assert all(j.cache_dir == "/tmp/refs" and j.config.max_steps == 2 for j in tinylm)


def test_resources_and_timeouts_come_from_the_hf_config() -> None:
    hf = parse_stage_config("hf", {**HF, "num_cpus": 2, "max_seconds": 7200})
    job = EvalJob("hf", "beta=0.1", 0, "dpo", "{}", hf)
    assert job_resources(job, cluster_gpus=lambda: 1.0) == (2.0, 1.0)
    assert job_resources(job, cluster_gpus=lambda: 0.0) == (2.0, 0.0)
    bandit = EvalJob("bandit", "tabular", 0, "dpo", "{}", BanditConfig())
    assert job_resources(bandit, cluster_gpus=lambda: 1 / 0) == (None, None)  # never asked
    assert stage_timeout("hf", hf, 900.0) == 7800.0
    assert stage_timeout("hf", {**HF, "max_seconds": 10}, 900.0) == 900.0
    assert stage_timeout("bandit", BanditConfig(), 900.0) == 900.0
