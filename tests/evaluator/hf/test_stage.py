"""run_hf in process: full fine-tuning, LoRA, conversational data; failures as statuses."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from evaluator.hf.stage import run_hf
from evaluator.results import RunStatus
from evaluator.stage_configs import parse_stage_config
from tests.evaluator.hf.conftest import HFFiles
from tests.evaluator.plain_losses import DPO, NAN_AFTER_MOVING, NAN_AT_LARGE_BETA

PAIR_METRICS = {
    "rewards/accuracies",
    "rewards/margins",
    "logps/chosen_drift",
    "logps/rejected_drift",
    "params/trained_changed",
}
Config = Callable[..., dict[str, Any]]


def test_dpo_full_fine_tuning_moves_every_weight_and_is_scored(
    hf_config: Config, hf_files: HFFiles
) -> None:
    config = parse_stage_config("hf", hf_config(reward_model=str(hf_files.reward)))
    result = run_hf(DPO, task="beta=0.1", seed=0, config=config)
    assert result.status is RunStatus.DONE, result.reason
    assert result.steps == len(result.losses) == 6
    assert set(result.metrics) == PAIR_METRICS | {"kl/ref", "reward/mean", "reward/ref_mean"}
    assert result.metrics["params/trained_changed"] == 1.0
    # Every pair prefers a positive review: DPO learns that on held-out pairs.
    assert result.metrics["rewards/accuracies"] > 0.8
    assert result.metrics["rewards/margins"] > 0.0
    assert result.losses[-1] < result.losses[0]
    # Training curves: loss and TRL's reward margin per step (no per-step KL at hf).
    assert result.curves["step"] == [1, 2, 3, 4, 5, 6]
    assert result.curves["loss"] == result.losses
    assert set(result.curves) == {"step", "loss", "rewards/margins"}
    assert result.curves["rewards/margins"][0] == pytest.approx(0.0, abs=1e-4)  # pi = pi_ref
    assert result.curves["rewards/margins"][-1] > 0.0
    assert result.llm_calls == []
    assert set(result.timings) == {"load_s", "train_s", "score_s"}
    again = run_hf(DPO, task="beta=0.1", seed=0, config=config)
    assert again.metrics == result.metrics  # one seed, one result


def test_lora_trains_the_adapter_and_leaves_the_base_frozen(hf_config: Config) -> None:
    config = parse_stage_config("hf", hf_config(lora={"r": 4, "lora_alpha": 8.0}))
    result = run_hf(DPO, task="beta=0.1", seed=0, config=config)
    assert result.status is RunStatus.DONE, result.reason
    assert result.metrics["params/trained_changed"] == 1.0  # every adapter tensor moved
    assert result.metrics["params/frozen_changed"] == 0.0  # no base weight did
    assert "kl/ref" in result.metrics  # the reference: the base, adapter disabled


def test_conversational_data_trains_through_the_chat_template(
    hf_config: Config, hf_files: HFFiles
) -> None:
    config = parse_stage_config("hf", hf_config(dataset=str(hf_files.conversational)))
    result = run_hf(DPO, task="beta=0.1", seed=1, config=config)
    assert result.status is RunStatus.DONE, result.reason
    assert result.metrics["params/trained_changed"] == 1.0


def test_a_loss_that_goes_nan_stops_the_run_with_nan_loss(hf_config: Config) -> None:
    at_once = run_hf(
        NAN_AT_LARGE_BETA,
        task="beta=3.0",
        seed=0,
        config=parse_stage_config("hf", hf_config(beta=3.0)),
    )
    assert at_once.status is RunStatus.NAN_LOSS
    assert at_once.reason == "loss is non-finite at step 1"
    assert at_once.metrics == {}
    later = run_hf(
        NAN_AFTER_MOVING,
        task="beta=0.1",
        seed=0,
        config=parse_stage_config("hf", hf_config(max_steps=40, learning_rate=1e-2)),
    )
    assert later.status is RunStatus.NAN_LOSS, later.reason
    assert later.steps >= 1 and later.steps == len(later.losses) < 40
    assert later.reason == f"loss is non-finite at step {later.steps + 1}"


@pytest.mark.parametrize(
    ("field", "value", "named"),
    [
        ("model", "/nowhere/policy", "policy '/nowhere/policy': no directory at /nowhere/policy"),
        ("dataset", "/nowhere/prefs.jsonl", "no preference file at /nowhere/prefs.jsonl"),
        ("reward_model", "./no-reward", "reward model './no-reward': no directory at no-reward"),
        ("ref_models", ["/nowhere/ref"], "reference model 1 '/nowhere/ref': no directory"),
    ],
)
def test_what_is_not_there_fails_the_run_with_what_was_looked_for(
    hf_config: Config, field: str, value: object, named: str
) -> None:
    config = parse_stage_config("hf", hf_config(**{field: value}))
    result = run_hf(DPO, task="beta=0.1", seed=0, config=config)
    assert result.status is RunStatus.ERROR
    assert named in (result.reason or "")
    assert result.steps == 0 and result.metrics == {}


@pytest.mark.parametrize(
    ("field", "named"),
    [("model", "policy 'someone/no-such-model'"), ("dataset", "dataset 'someone/no-such-model'")],
)
def test_a_hub_name_that_cannot_be_fetched_says_why(
    hf_config: Config, field: str, named: str
) -> None:
    config = parse_stage_config("hf", hf_config(**{field: "someone/no-such-model"}))
    result = run_hf(DPO, task="beta=0.1", seed=0, config=config)
    assert result.status is RunStatus.ERROR
    assert named in (result.reason or "")
    assert "HF_HUB_OFFLINE" in (result.reason or "")  # what to do about it


def test_the_time_budget_stops_training_with_timeout(hf_config: Config) -> None:
    result = run_hf(
        DPO, task="beta=0.1", seed=0, config=parse_stage_config("hf", hf_config(max_seconds=1e-3))
    )
    assert result.status is RunStatus.TIMEOUT
    assert result.steps == 1  # the deadline is checked after each step
    assert "max_seconds=0.001 spent after step 1" in (result.reason or "")


def test_a_task_outside_the_grid_is_an_error(hf_config: Config) -> None:
    config = parse_stage_config("hf", hf_config(betas=[0.1, 0.5]))
    assert list(config.tasks) == ["beta=0.1", "beta=0.5"]
    result = run_hf(DPO, task="beta=0.2", seed=0, config=config)
    assert result.status is RunStatus.ERROR
    assert "unknown hf task 'beta=0.2'" in (result.reason or "")
