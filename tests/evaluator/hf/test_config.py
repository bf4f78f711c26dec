"""HFConfig: parsed from plain data with each bad field named; tasks are a beta grid; the metric
follows the scoring that is configured; API keys are refused."""

from __future__ import annotations

from typing import Any

import pytest

from evaluator.hf.config import HFConfig, task_name
from evaluator.hf.errors import HFConfigError
from evaluator.stage_configs import parse_stage_config

BASE = {"model": "gpt2", "dataset": "prefs.jsonl"}
JUDGE = {"base_url": "http://127.0.0.1:8001/v1", "model": "judge"}


def test_defaults_and_nested_settings_parse() -> None:
    config = parse_stage_config(
        "hf", {**BASE, "betas": [0.01, 0.05, 1], "lora": {"r": 4, "target_modules": ["c_attn"]}}
    )
    assert config.betas == (0.01, 0.05, 1.0)
    assert config.lora is not None and config.lora.target_modules == ("c_attn",)
    assert config.ref_models == () and config.num_gpus is None and not config.held_out
    assert config == parse_stage_config(
        "hf", {**BASE, "betas": (0.01, 0.05, 1.0), "lora": config.lora.__dict__}
    )


def test_tasks_are_the_beta_grid_and_name_their_beta_exactly() -> None:
    config = HFConfig(**BASE, betas=(0.01, 0.05, 1.0), held_out=True)
    assert config.tasks == {"beta=0.01": True, "beta=0.05": True, "beta=1.0": True}
    assert [config.beta_of(t) for t in config.tasks] == [0.01, 0.05, 1.0]
    assert HFConfig(**BASE, beta=0.2).tasks == {"beta=0.2": False}
    assert HFConfig(**BASE, beta=1 / 3).beta_of(task_name(1 / 3)) == 1 / 3  # round trip
    with pytest.raises(ValueError, match=r"unknown hf task 'beta=0\.5'"):
        config.beta_of("beta=0.5")


@pytest.mark.parametrize(
    ("extra", "metric"),
    [
        ({}, "rewards/accuracies"),
        ({"reward_model": "lvwerra/distilbert-imdb"}, "reward/mean"),
        ({"reward_model": "rm", "judge": JUDGE}, "judge/win_rate"),
        ({"reward_model": "rm", "judge": JUDGE, "score_metric": "reward/mean"}, "reward/mean"),
        ({"score_metric": "rewards/margins"}, "rewards/margins"),
    ],
)
def test_the_score_metric_follows_the_scoring(extra: dict[str, Any], metric: str) -> None:
    assert parse_stage_config("hf", {**BASE, **extra}).metric == metric


@pytest.mark.parametrize(
    ("extra", "field", "message"),
    [
        ({"beta": "high"}, "beta", "must be a number"),
        ({"beta": 0}, "beta", "must be > 0"),
        ({"betas": []}, "betas", "at least one beta"),
        ({"max_steps": 2.5}, "max_steps", "must be an integer"),
        ({"max_steps": 0}, "max_steps", "-1 to train num_train_epochs"),
        ({"bf16": "yes"}, "bf16", "must be true or false"),
        ({"lr_scheduler_type": "wavy"}, "lr_scheduler_type", "must be one of"),
        ({"lora": {"r": 0}}, "lora.r", "must be >= 1"),
        ({"lora": {"rank": 8}}, "lora.rank", "unknown field"),
        ({"judge": {"model": "j"}}, "judge.base_url", "is required"),
        ({"judge": {**JUDGE, "base_url": "localhost"}}, "judge.base_url", "http(s) URL"),
        ({"ref_models": ["a", "b"], "ref_weights": [1.0]}, "ref_weights", "one per reference"),
        ({"ref_models": ["a", "b"], "ref_weights": [0.5, 0.6]}, "ref_weights", "sum to 1"),
        (
            {"per_device_train_batch_size": 64, "num_train_pairs": 8},
            "per_device_train_batch_size",
            "exceeds",
        ),
        ({"score_metric": "kl/ref"}, "score_metric", "is not one of"),
        ({"score_metric": "judge/win_rate"}, "score_metric", "needs a `judge`"),
        ({"num_eval_prompts": 0, "reward_model": "rm"}, "num_eval_prompts", "must be >= 1"),
        ({"learning_rte": 1e-6}, "learning_rte", "unknown field"),
        ({"num_gpus": -1}, "num_gpus", "must be >= 0"),
    ],
)
def test_a_bad_field_is_named_with_what_to_do(
    extra: dict[str, Any], field: str, message: str
) -> None:
    with pytest.raises(HFConfigError) as error:
        parse_stage_config("hf", {**BASE, **extra})
    assert error.value.field == field
    assert message in error.value.message


def test_model_and_dataset_are_required() -> None:
    with pytest.raises(HFConfigError, match="model: is required"):
        parse_stage_config("hf", {"dataset": "d.jsonl"})


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"judge": {**JUDGE, "api_key": "sk-1"}}, "judge.api_key"),
        ({"judge_api_key": "sk"}, "judge_api_key"),
    ],
)
def test_api_keys_are_refused_with_the_setting_to_use(extra: dict[str, Any], field: str) -> None:
    with pytest.raises(HFConfigError) as error:
        parse_stage_config("hf", {**BASE, **extra})
    assert error.value.field == field
    assert "LOSSFORGE_JUDGE_API_KEY" in error.value.message
    assert "sk-1" not in str(error.value) and "'sk'" not in str(error.value)
