"""Fixtures of the hf stage tests: tiny local models and data built once, one Ray, one judge.

Everything is built in this process from configs (no download): a tiny GPT-2 policy, a second
reference model, a tiny reward classifier, and JSONL preference sets (plain and conversational),
saved into a package-scoped temporary directory that the stage loads by path. Runs use one CPU
thread, as an evaluator worker with one CPU does.
"""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"  # before huggingface_hub is imported: nothing may download

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import ray
import torch

from evaluator.baselines import BASELINES
from sandbox import Candidate, Sandbox, SandboxConfig
from tests.evaluator.hf.judge_server import ScriptedJudge
from tests.evaluator.hf.local import (
    preference_rows,
    save_causal_lm,
    save_reward_model,
    write_jsonl,
)


@dataclass(frozen=True)
class HFFiles:
    policy: Path  # tiny GPT-2 + tokenizer
    other_ref: Path  # another tiny GPT-2 (other weights), for multi-reference runs
    reward: Path  # tiny GPT-2 sequence classifier + tokenizer
    plain: Path  # JSONL, 96 plain-text rows
    conversational: Path  # JSONL, 96 conversational rows


@pytest.fixture(scope="package", autouse=True)
def one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="package")
def hf_files(tmp_path_factory: pytest.TempPathFactory) -> HFFiles:
    root = tmp_path_factory.mktemp("hf")
    files = HFFiles(
        policy=root / "policy",
        other_ref=root / "other-ref",
        reward=root / "reward",
        plain=root / "prefs.jsonl",
        conversational=root / "chat.jsonl",
    )
    save_causal_lm(files.policy, seed=0)
    save_causal_lm(files.other_ref, seed=1)
    save_reward_model(files.reward, seed=2)
    write_jsonl(files.plain, preference_rows(96, seed=0))
    write_jsonl(files.conversational, preference_rows(96, seed=0, conversational=True))
    return files


@pytest.fixture(scope="package")
def hf_config(hf_files: HFFiles) -> Callable[..., dict[str, Any]]:
    """hf_config(**overrides) -> a small stage config (plain data, as in a spec) for these files."""

    def make(**overrides: Any) -> dict[str, Any]:
        return {
            "model": str(hf_files.policy),
            "dataset": str(hf_files.plain),
            "num_train_pairs": 64,
            "num_eval_pairs": 16,
            "num_eval_prompts": 8,
            "max_new_tokens": 6,
            "max_length": 32,
            "per_device_train_batch_size": 8,
            "max_steps": 6,
            "learning_rate": 1e-3,
            "beta": 0.1,
            **overrides,
        }

    return make


@pytest.fixture(scope="package")
def graphs() -> dict[str, str]:
    """Rebuildable graph JSON of a few baselines, from the sandbox (what workers receive)."""
    out = {}
    with Sandbox(SandboxConfig(pool_size=1)) as sandbox:
        for name in ("dpo", "lrml", "ipo", "hinge", "mrpo"):
            verdict = sandbox.validate(
                Candidate(name=name, thought="", code=BASELINES[name].source)
            )
            assert verdict.accepted, verdict.reason
            out[name] = verdict.graph_json or ""
    return out


@pytest.fixture(scope="package")
def ray_local() -> Iterator[str]:
    """One local Ray instance for the package (starting one costs seconds); no GPU. Yields its
    address, for the lossforge processes that join it."""
    ray.init(
        num_cpus=2,
        num_gpus=0,
        include_dashboard=False,
        log_to_driver=False,
        _node_ip_address="127.0.0.1",
    )
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.fixture
def judge_server() -> Iterator[ScriptedJudge]:
    server = ScriptedJudge().start()
    yield server
    server.stop()
