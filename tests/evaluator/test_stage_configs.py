"""Stage configs: one validator, strict scalars, lists for tuples, every field described, and
every error naming its field."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from evaluator.hf.errors import HFConfigError
from evaluator.stage_configs import (
    CONFIG_CLASSES,
    BanditConfig,
    HFConfig,
    ModelConfig,
    StageConfigError,
    TinyLMConfig,
    parse_stage_config,
)

HF = {"model": "gpt2", "dataset": "prefs.jsonl"}


def _models(cls: type[BaseModel]) -> list[type[BaseModel]]:
    """`cls` and every config model nested in its fields, recursively."""
    found = [cls]
    for field in cls.model_fields.values():
        for candidate in (field.annotation, *getattr(field.annotation, "__args__", ())):
            if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                found += _models(candidate)
    return found


@pytest.mark.parametrize("stage", sorted(CONFIG_CLASSES))
def test_every_field_has_a_description_in_the_schema(stage: str) -> None:
    models = _models(CONFIG_CLASSES[stage])
    assert len(models) > 1 or stage == "bandit"  # nested settings are walked too
    for model in models:
        for name, field in model.model_fields.items():
            assert field.description, f"{model.__name__}.{name} has no description"
    schema = CONFIG_CLASSES[stage].model_json_schema()
    assert all("description" in p for p in schema["properties"].values())


@pytest.mark.parametrize(
    ("stage", "values", "field", "reason"),
    [
        ("bandit", {"max_steps": True}, "max_steps", "must be an integer, got True"),
        ("bandit", {"max_steps": "2"}, "max_steps", "must be an integer, got '2'"),
        ("bandit", {"max_steps": 2.0}, "max_steps", "must be an integer"),
        ("bandit", {"beta": True}, "beta", "must be a number, got True"),
        ("bandit", {"beta": "0.1"}, "beta", "must be a number"),
        ("bandit", {"beta": float("nan")}, "beta", "must be a finite number"),
        ("bandit", {"beta_grid": 0.1}, "beta_grid", "must be a list"),
        ("bandit", {"beta_grid": [0.1, True]}, "beta_grid", "item 1 must be a number"),
        ("tinylm", {"model": {"arch": 2}}, "model.arch", "must be one of"),
        ("hf", {**HF, "model": 3}, "model", "must be a string, got 3"),
        ("hf", {**HF, "bf16": 1}, "bf16", "must be true or false"),
        ("hf", {**HF, "ref_models": ["a", 1]}, "ref_models", "item 1 must be a string"),
    ],
)
def test_scalars_are_strict(stage: str, values: dict[str, Any], field: str, reason: str) -> None:
    with pytest.raises(StageConfigError) as error:
        parse_stage_config(stage, values)
    assert error.value.field == field
    assert reason in error.value.reason
    assert error.value.message.startswith(f"{field}: ")


def test_lists_and_tuples_give_the_same_config_and_ints_become_floats() -> None:
    from_yaml = parse_stage_config("bandit", {"beta_grid": [1, 0.5], "beta": 1})
    typed = BanditConfig(beta_grid=(1.0, 0.5), beta=1.0)
    assert from_yaml == typed and isinstance(from_yaml.beta, float)
    assert from_yaml.beta_grid == (1.0, 0.5)
    tiny = parse_stage_config("tinylm", {"model": {"n_layer": 3}, "frontier_betas": [2]})
    assert isinstance(tiny, TinyLMConfig) and tiny.model == ModelConfig(n_layer=3)
    assert tiny.frontier_betas == (2.0,)


@pytest.mark.parametrize(
    ("stage", "values", "field", "reason"),
    [
        ("tinylm", {"max_step": 3}, "max_step", "unknown field; TinyLMConfig has ["),
        ("tinylm", {"model": {"n_layr": 3}}, "model.n_layr", "unknown field; ModelConfig has ["),
        ("tinylm", {"max_steps": "ten"}, "max_steps", "must be an integer, got 'ten'"),
        ("tinylm", {"model": {"n_head": "4"}}, "model.n_head", "must be an integer"),
        ("tinylm", {"model": 3}, "model", "must be a mapping of ModelConfig fields"),
        ("tinylm", {"model": {"n_embd": 30}}, "model.n_embd", "multiple of n_head (4)"),
        ("tinylm", {"max_length": 64}, "max_length", "exceeds the model's n_positions"),
        ("tinylm", {"sft": {"learning_rate": 0}}, "sft.learning_rate", "must be positive"),
        ("bandit", {"extra_label_noise": 0.5}, "extra_label_noise", "at 0.5 labels carry"),
        ("hf", {**HF, "lora": {"r": 0}}, "lora.r", "must be >= 1"),
        ("hf", {"dataset": "d.jsonl"}, "model", "is required"),
    ],
)
def test_parse_names_the_field(stage: str, values: dict[str, Any], field: str, reason: str) -> None:
    with pytest.raises(StageConfigError) as error:
        parse_stage_config(stage, values)
    assert (error.value.field, error.value.message) == (field, f"{field}: {error.value.reason}")
    assert reason in error.value.reason
    assert str(error.value) == error.value.message


def test_an_unknown_field_lists_the_known_ones() -> None:
    with pytest.raises(StageConfigError) as error:
        parse_stage_config("bandit", {"max_step": 3})
    assert "'max_steps'" in error.value.message and "'beta_grid'" in error.value.message


def test_a_typed_config_passes_through_and_the_wrong_one_is_refused() -> None:
    config = TinyLMConfig(max_steps=3)
    assert parse_stage_config("tinylm", config) is config
    with pytest.raises(StageConfigError, match="a bandit stage takes a BanditConfig"):
        parse_stage_config("bandit", config)
    with pytest.raises(StageConfigError, match="unknown stage 'gpt5'") as error:
        parse_stage_config("gpt5", {})
    assert error.value.field == ""
    with pytest.raises(StageConfigError, match="must be a mapping of BanditConfig fields"):
        parse_stage_config("bandit", [1, 2])  # type: ignore[arg-type]


def test_configs_are_frozen_and_hf_config_errors_are_stage_config_errors() -> None:
    config = parse_stage_config("hf", HF)
    assert isinstance(config, HFConfig) and config.tasks == {"beta=0.1": False}
    with pytest.raises(ValueError, match="frozen"):
        config.beta = 0.2  # type: ignore[misc]
    assert HFConfigError is StageConfigError  # `except HFConfigError` catches every stage's
    with pytest.raises(HFConfigError):
        parse_stage_config("tinylm", {"beta": -1.0})


def test_an_api_key_is_refused_without_being_echoed() -> None:
    with pytest.raises(StageConfigError) as error:
        parse_stage_config(
            "hf", {**HF, "judge": {"base_url": "http://x", "model": "m", "api_key": "sk-7"}}
        )
    assert error.value.field == "judge.api_key" and "LOSSFORGE_JUDGE_API_KEY" in error.value.reason
    assert "sk-7" not in str(error.value) and error.value.__cause__ is None
