"""Every baseline goes through the sandbox like any candidate and trains on both stages."""

from __future__ import annotations

from pathlib import Path

import pytest

from evaluator.bandit import BanditConfig, run_bandit
from evaluator.baselines import BASELINES
from evaluator.results import RunStatus
from evaluator.tinylm.stage import TinyLMConfig, run_tinylm
from evaluator.worker import load_loss
from sandbox import Candidate, Sandbox, SandboxConfig
from tests.evaluator.configs import with_fields


@pytest.fixture(scope="module")
def graphs() -> dict[str, str]:
    out = {}
    with Sandbox(SandboxConfig(pool_size=2)) as sandbox:
        for name, baseline in BASELINES.items():
            verdict = sandbox.validate(Candidate(name=name, thought="", code=baseline.source))
            assert verdict.accepted, f"{name}: {verdict.reason}"
            out[name] = verdict.graph_json
    return out


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_baseline_trains_on_both_stages(
    name: str, graphs: dict[str, str], tinylm_config: TinyLMConfig, tinylm_cache: Path
) -> None:
    loss = load_loss(name, graphs[name])  # the rebuilt graph, as a worker gets it
    bandit = run_bandit(loss, task="tabular", seed=0, config=BanditConfig(max_steps=40))
    assert bandit.status is RunStatus.DONE, bandit.reason
    assert bandit.metrics["frontier/area"] >= 0.0

    short = with_fields(
        tinylm_config, max_steps=6, num_train_pairs=192, num_eval_pairs=32, num_eval_prompts=32
    )
    tinylm = run_tinylm(loss, task="arithmetic", seed=0, config=short, cache_dir=tinylm_cache)
    assert tinylm.status is RunStatus.DONE, tinylm.reason
    assert 0.0 <= tinylm.metrics["reward/mean"] <= 1.0
