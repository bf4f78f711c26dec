"""Typed stage configs, and the one validator that turns plain data into them.

Each stage's settings are a frozen pydantic model with TRL's DPOConfig names and a description on
every field (so `/openapi.json` shows them): `BanditConfig`, `TinyLMConfig` (with its nested
`ModelConfig` and `SFTConfig`), both here, and `HFConfig` (with `LoraSettings` and
`JudgeSettings`, defined in `evaluator.hf.config` and re-exported here). `parse_stage_config(stage,
values)` is the one place plain data (a campaign spec, a posted form, a CLI flag) becomes one; an
error is a `StageConfigError` naming the field (`model.n_head`) and saying what to do. Scalars are
strict (a bool is not a number, "2" is not an integer, a number is not a string); tuple fields
take lists, as YAML and JSON give them.

This module imports only the standard library and pydantic (the CLI and the spec parser use it
without paying for torch). It holds no worker values (the reference cache directory, the judge's
API key: see `evaluator.job.EvalJob`) and runs nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field, StrictFloat, StrictInt, model_validator

from evaluator.config_base import StageConfigError, StageConfigModel, validate_config
from evaluator.hf.config import (
    API_KEY_SETTING,
    SCORABLE_METRICS,
    HFConfig,
    JudgeSettings,
    LoraSettings,
    task_name,
)

__all__ = [
    "API_KEY_SETTING",
    "CONFIG_CLASSES",
    "SCORABLE_METRICS",
    "BanditConfig",
    "HFConfig",
    "JudgeSettings",
    "LoraSettings",
    "ModelConfig",
    "SFTConfig",
    "StageConfig",
    "StageConfigError",
    "StageConfigModel",
    "TinyLMConfig",
    "parse_stage_config",
    "task_name",
]

# -- bandit ---------------------------------------------------------------------------------------


class BanditConfig(StageConfigModel):
    """Training settings of the bandit stage (names follow TRL's DPOConfig)."""

    beta: StrictFloat = Field(
        0.1, description="Main beta: reward, KL, preservation and noise are measured here."
    )
    beta_grid: tuple[StrictFloat, ...] = Field(
        (0.1, 0.3, 1.0, 3.0), description="Betas traced for the reward-KL frontier."
    )
    learning_rate: StrictFloat = Field(
        0.1, description="Adam learning rate on logits (tabular) or feature weights."
    )
    max_steps: StrictInt = Field(
        300,
        description="Full-batch steps: enough for DPO to near its finite optimum at the smallest "
        "beta, so that beta, not the step budget, sets how far the policy moves.",
    )
    extra_label_noise: StrictFloat = Field(
        0.2, description="Fraction of labels flipped for the noise-robustness run, in [0, 0.5)."
    )
    population_size: StrictInt = Field(
        16,
        description="Losses trained together by run_bandit_population. A run is a few kB of "
        "parameters and Adam moments plus (N,) activations, so memory never binds; each loss "
        "still runs its own graph every step, so the speed-up (1.4x at 8 on one core) comes from "
        "the shared rest.",
    )
    loss_time_multiple: StrictFloat = Field(
        20.0,
        description="A loss in a population is stopped (TIMEOUT) past the larger of "
        "loss_time_floor_s and this multiple of the population's median time (train.TimeShare).",
    )
    loss_time_floor_s: StrictFloat = Field(
        2.0, description="Seconds a loss in a population may always take (train.TimeShare)."
    )
    loss_time_max_s: StrictFloat = Field(
        120.0, description="Seconds past which a loss in a population is always stopped."
    )

    @model_validator(mode="after")
    def _check(self) -> BanditConfig:
        if self.beta <= 0 or any(b <= 0 for b in self.beta_grid):
            raise StageConfigError("beta", "beta and every beta_grid value must be positive")
        if not 0 <= self.extra_label_noise < 0.5:
            raise StageConfigError(
                "extra_label_noise", "must be in [0, 0.5): at 0.5 labels carry nothing"
            )
        if self.max_steps < 1 or self.learning_rate <= 0:
            raise StageConfigError("max_steps", "max_steps must be >= 1 and learning_rate > 0")
        if min(self.loss_time_multiple, self.loss_time_floor_s, self.loss_time_max_s) <= 0:
            raise StageConfigError(
                "loss_time_multiple",
                "loss_time_multiple, loss_time_floor_s and loss_time_max_s must be > 0",
            )
        if self.population_size < 1:
            raise StageConfigError("population_size", f"must be >= 1, got {self.population_size}")
        return self


# -- tinylm ---------------------------------------------------------------------------------------


class ModelConfig(StageConfigModel):
    """Shape of the tiny policy; the vocabulary size comes from the task's tokenizer."""

    arch: Literal["gpt2", "llama"] = Field(
        "gpt2", description="Which transformers architecture to instantiate."
    )
    n_layer: StrictInt = Field(2, description="Transformer blocks.")
    n_head: StrictInt = Field(4, description="Attention heads per block.")
    n_embd: StrictInt = Field(64, description="Hidden size; a multiple of n_head.")
    n_positions: StrictInt = Field(
        32, description="Longest sequence (prompt + completion) the model accepts."
    )

    @model_validator(mode="after")
    def _check(self) -> ModelConfig:
        for name in ("n_layer", "n_head", "n_embd", "n_positions"):  # n_head 0 would divide by 0
            if getattr(self, name) < 1:
                raise StageConfigError(name, f"must be >= 1, got {getattr(self, name)}")
        if self.n_embd % self.n_head:
            raise StageConfigError(
                "n_embd", f"({self.n_embd}) must be a multiple of n_head ({self.n_head})"
            )
        return self


class SFTConfig(StageConfigModel):
    """How the tinylm reference is fine-tuned (field names as in TRL's SFTConfig)."""

    learning_rate: StrictFloat = Field(3e-3, description="AdamW peak learning rate.")
    max_steps: StrictInt = Field(800, description="Optimizer steps.")
    per_device_train_batch_size: StrictInt = Field(64, description="Demonstrations per step.")
    warmup_steps: StrictInt = Field(
        50, description="Linear warmup steps, then cosine decay to 10% of the peak."
    )
    num_demonstrations: StrictInt = Field(
        8192, description="Size of the demonstration set, drawn once."
    )
    seed: StrictInt = Field(
        0,
        description="Model init, demonstrations and batch order: the reference's own seed (the "
        "held-out prompts and pairs follow it too, so every run seed sees the same ones).",
    )

    @model_validator(mode="after")
    def _check(self) -> SFTConfig:
        if self.max_steps < 1 or self.per_device_train_batch_size < 1:
            raise StageConfigError(
                "max_steps", "SFTConfig needs max_steps >= 1 and per_device_train_batch_size >= 1"
            )
        if self.learning_rate <= 0:
            raise StageConfigError("learning_rate", f"must be positive, got {self.learning_rate}")
        return self


class TinyLMConfig(StageConfigModel):
    """Settings of a tinylm run; training field names follow TRL's DPOConfig.

    The task and the seed are arguments of `run_tinylm`, not fields: one config serves every task
    and seed of a campaign. The reference cache directory is a worker value, not a field.
    """

    beta: StrictFloat = Field(
        1.0,
        description="KL strength passed to the loss. Higher than TRL's 0.1: with completions of "
        "a few tokens, DPO at beta 0.1 over-optimizes (it learns to stop early) and loses reward "
        "on sorting.",
    )
    learning_rate: StrictFloat = Field(
        5e-4, description="AdamW learning rate, constant, no weight decay."
    )
    max_length: StrictInt = Field(
        32, description="Prompt + completion tokens kept (keep-start truncation, as TRL)."
    )
    per_device_train_batch_size: StrictInt = Field(32, description="Preference pairs per step.")
    max_steps: StrictInt = Field(
        128, description="Optimizer steps (one epoch of the default 4096 pairs)."
    )
    max_grad_norm: StrictFloat | None = Field(
        1.0, description="Gradient clipping (TRL's default); null disables it."
    )
    num_train_pairs: StrictInt = Field(
        4096, description="Pairs from train prompts, sampled with the run seed."
    )
    num_eval_pairs: StrictInt = Field(
        256, description="Pairs from held-out prompts, fixed per task (no label noise)."
    )
    num_eval_prompts: StrictInt = Field(
        512, description="Held-out prompts sampled (with replacement) for reward and KL."
    )
    label_noise: StrictFloat = Field(
        0.0, description="Probability that a train pair's preference is flipped, in [0, 0.5)."
    )
    max_kl: StrictFloat = Field(
        40.0,
        description="KL(pi || pi_ref) per sequence, in nats, beyond which a run is DIVERGED.",
    )
    max_seconds: StrictFloat | None = Field(
        None,
        description="Wall-clock budget of the whole run (of a population: the whole "
        "population's); null: unlimited.",
    )
    population_size: StrictInt = Field(
        16,
        description="Candidates trained together by run_tinylm_population. Memory grows ~12 MB "
        "per copy of the default model (bench/population.py measured 187 MB at 16, 705 MB at "
        "64), so 16 fits any CPU worker; on CPU the speed-up is flat from 4 on while the data "
        "made once per population is split 16 ways. On a GPU raise it (K = 256 needs ~3 GB).",
    )
    frontier_betas: tuple[StrictFloat, ...] = Field(
        (0.25, 0.5, 2.0, 4.0, 8.0, 16.0),
        description="DPO's reward-KL frontier (evaluator.frontier): the betas DPO also trains "
        "at, besides `beta`, under each task and seed, so candidates are scored against DPO at "
        "their own KL. Wide enough that candidates rarely fall outside it; each one is one more "
        "DPO run per task and seed, shared by every candidate of a campaign.",
    )
    model: ModelConfig = Field(
        default_factory=ModelConfig, description="Shape of the policy and the reference."
    )
    sft: SFTConfig = Field(
        default_factory=SFTConfig, description="How the reference is fine-tuned."
    )

    @model_validator(mode="after")
    def _check(self) -> TinyLMConfig:
        if self.beta <= 0 or self.learning_rate <= 0:
            raise StageConfigError("beta", "TinyLMConfig needs beta > 0 and learning_rate > 0")
        if not 0.0 <= self.label_noise < 0.5:
            raise StageConfigError("label_noise", f"must lie in [0, 0.5), got {self.label_noise}")
        if self.per_device_train_batch_size > self.num_train_pairs:
            raise StageConfigError(
                "per_device_train_batch_size",
                f"({self.per_device_train_batch_size}) exceeds num_train_pairs "
                f"({self.num_train_pairs}); lower it or build more pairs",
            )
        if self.max_length > self.model.n_positions:
            raise StageConfigError(
                "max_length",
                f"({self.max_length}) exceeds the model's n_positions ({self.model.n_positions})",
            )
        if min(self.max_steps, self.num_eval_pairs, self.num_eval_prompts) < 1:
            raise StageConfigError(
                "max_steps", "max_steps, num_eval_pairs and num_eval_prompts must be >= 1"
            )
        if any(not b > 0 for b in self.frontier_betas):
            raise StageConfigError(
                "frontier_betas", f"must all be > 0, got {list(self.frontier_betas)}"
            )
        if self.population_size < 1:
            raise StageConfigError("population_size", f"must be >= 1, got {self.population_size}")
        return self


# -- the one validator ----------------------------------------------------------------------------

StageConfig = BanditConfig | TinyLMConfig | HFConfig
CONFIG_CLASSES: dict[str, type[BanditConfig] | type[TinyLMConfig] | type[HFConfig]] = {
    "bandit": BanditConfig,
    "tinylm": TinyLMConfig,
    "hf": HFConfig,
}


def parse_stage_config(stage: str, values: Mapping[str, Any] | StageConfig) -> StageConfig:
    """The typed config of `stage` from plain data (lists for tuples, mappings for nested
    settings); a config already of the stage's class comes back unchanged.

    Raises StageConfigError naming the field for an unknown field, a value of the wrong type, a
    value the stage refuses or an API key in the config ("" as the field for an unknown stage or
    a config that is not a mapping).
    """
    cls = CONFIG_CLASSES.get(stage)
    if cls is None:
        raise StageConfigError("", f"unknown stage {stage!r}; choose one of {list(CONFIG_CLASSES)}")
    if isinstance(values, cls):
        return values
    if isinstance(values, StageConfigModel):
        raise StageConfigError(
            "", f"a {stage} stage takes a {cls.__name__}, got a {type(values).__name__}"
        )
    return validate_config(cls, values)
