"""The hf stage's config: frozen pydantic models with TRL's DPOConfig names.

`HFConfig` says what to train (policy, references, dataset), how (DPOConfig fields, optional LoRA
with peft's field names), how to score (reward model, LLM judge, held-out pairs) and what a job
asks Ray for. Plain data becomes one through `evaluator.stage_configs.parse_stage_config("hf",
...)` (or as a part of a campaign spec), so a bad field is a `StageConfigError` naming it
(`lora.r`).

The stage's tasks are the points of a beta grid: task `beta=0.05` trains with beta 0.05.

This module imports nothing heavy (no torch or TRL; pydantic only): the spec parser and the engine
use it to validate configs and name tasks. It loads nothing and knows no secrets: the judge's API
key is never a field here (specs are archived); it reaches a worker beside the config, in the job.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field, StrictBool, StrictFloat, StrictInt, StrictStr, model_validator

from evaluator.config_base import StageConfigError, StageConfigModel

__all__ = [
    "API_KEY_SETTING",
    "SCORABLE_METRICS",
    "HFConfig",
    "JudgeSettings",
    "LoraSettings",
    "task_name",
]

# Metrics a stage may rank by; higher is better for each. `kl/ref` is reported, never ranked by.
SCORABLE_METRICS = ("judge/win_rate", "reward/mean", "rewards/accuracies", "rewards/margins")
API_KEY_SETTING = "LOSSFORGE_JUDGE_API_KEY"
_TASK_PREFIX = "beta="


class LoraSettings(StageConfigModel):
    """LoRA adapters through peft; field names follow peft's LoraConfig."""

    r: StrictInt = Field(16, description="Adapter rank.")
    lora_alpha: StrictFloat = Field(
        32.0, description="Scaling numerator: updates are scaled by lora_alpha / r."
    )
    lora_dropout: StrictFloat = Field(
        0.05, description="Dropout on the adapter input during training, in [0, 1)."
    )
    target_modules: tuple[StrictStr, ...] | None = Field(
        None,
        description="Modules that get adapters; null lets peft choose for known architectures "
        "(GPT-2: c_attn; Llama: q_proj, v_proj).",
    )

    @model_validator(mode="after")
    def _check(self) -> LoraSettings:
        if self.r < 1:
            raise StageConfigError("r", f"must be >= 1, got {self.r}")
        if self.lora_alpha <= 0:
            raise StageConfigError("lora_alpha", f"must be > 0, got {self.lora_alpha}")
        if not 0.0 <= self.lora_dropout < 1.0:
            raise StageConfigError("lora_dropout", f"must lie in [0, 1), got {self.lora_dropout}")
        return self


class JudgeSettings(StageConfigModel):
    """An OpenAI-compatible chat endpoint that compares two answers to one prompt.

    Its API key is not a field: it comes from LOSSFORGE_JUDGE_API_KEY (falling back to
    LOSSFORGE_LLM_API_KEY), never from a spec (specs are archived).
    """

    base_url: StrictStr = Field(
        description="e.g. https://api.openai.com/v1 or http://localhost:8001/v1 (vLLM)."
    )
    model: StrictStr = Field(description="The judge model the endpoint serves.")
    prompt_price: StrictFloat = Field(
        0.0, description="USD per million prompt tokens (0 for a local endpoint)."
    )
    completion_price: StrictFloat = Field(0.0, description="USD per million completion tokens.")
    timeout_s: StrictFloat = Field(60.0, description="Seconds per request.")
    max_retries: StrictInt = Field(
        2, description="The openai client's retries (with backoff) per request."
    )
    max_concurrency: StrictInt = Field(4, description="Requests in flight at once.")
    max_tokens: StrictInt = Field(
        16,
        description="The verdict is one letter; a little room for a model that pads it.",
    )

    @model_validator(mode="after")
    def _check(self) -> JudgeSettings:
        if not self.base_url.startswith(("http://", "https://")):
            raise StageConfigError("base_url", f"must be an http(s) URL, got {self.base_url!r}")
        if not self.model:
            raise StageConfigError("model", "name the judge model the endpoint serves")
        if min(self.prompt_price, self.completion_price) < 0:
            raise StageConfigError("prompt_price", "prices must be >= 0 (USD per million tokens)")
        if self.timeout_s <= 0 or self.max_retries < 0 or self.max_concurrency < 1:
            raise StageConfigError(
                "timeout_s", "need timeout_s > 0, max_retries >= 0 and max_concurrency >= 1"
            )
        if self.max_tokens < 1:
            raise StageConfigError("max_tokens", f"must be >= 1, got {self.max_tokens}")
        return self


# Fields of HFConfig that must be at least 1.
_POSITIVE = (
    "num_train_pairs",
    "num_eval_pairs",
    "max_new_tokens",
    "max_length",
    "per_device_train_batch_size",
    "per_device_eval_batch_size",
    "gradient_accumulation_steps",
)


class HFConfig(StageConfigModel):
    """One hf stage: what to train, how, how to score it, and what a job asks Ray for.

    The task (a beta of the grid) and the seed are arguments of `run_hf`, not fields.
    """

    model: StrictStr = Field(
        description='Policy: a hub name ("gpt2") or a local directory saved with save_pretrained.'
    )
    dataset: StrictStr = Field(
        description="Preference data: a hub name, a local dataset directory, or a .jsonl file."
    )
    tokenizer: StrictStr | None = Field(
        None, description="Hub name or directory; null: the policy's."
    )
    ref_models: tuple[StrictStr, ...] = Field(
        (),
        description="Reference models (hub names or directories); empty: the policy's initial "
        "weights. With K of them a loss gets their combined log-probs sum_k w_k logp_k, and "
        "(K, B) tensors if it asks.",
    )
    ref_weights: tuple[StrictFloat, ...] | None = Field(
        None, description="w_k, one per reference model, summing to 1; null: 1/K each."
    )
    dataset_config: StrictStr | None = Field(
        None, description="The hub dataset's configuration name, if it has several."
    )
    dataset_split: StrictStr = Field("train", description="Split that train pairs come from.")
    eval_split: StrictStr | None = Field(
        None,
        description="Split that held-out pairs and prompts come from; null: the last rows of "
        "dataset_split, set aside before train pairs are drawn, the same for every seed.",
    )
    num_train_pairs: StrictInt = Field(
        1024, description="Pairs drawn from the train split with the run's seed."
    )
    num_eval_pairs: StrictInt = Field(
        128, description="Held-out pairs: implicit reward accuracy and margins."
    )
    num_eval_prompts: StrictInt = Field(
        64, description="Held-out prompts the policy answers (KL, reward, judge); 0: none."
    )
    max_new_tokens: StrictInt = Field(
        64, description="Tokens generated per held-out prompt (temperature 1)."
    )
    beta: StrictFloat = Field(
        0.1, description="DPOConfig: KL strength when `betas` is null (the only task, beta=0.1)."
    )
    betas: tuple[StrictFloat, ...] | None = Field(
        None, description="A beta grid: one task per value."
    )
    learning_rate: StrictFloat = Field(1e-6, description="AdamW learning rate (TRL's default).")
    lr_scheduler_type: Literal["linear", "cosine", "constant", "constant_with_warmup"] = Field(
        "linear", description="Learning-rate schedule (DPOConfig)."
    )
    warmup_steps: StrictInt = Field(0, description="Linear warmup steps (DPOConfig).")
    weight_decay: StrictFloat = Field(0.0, description="AdamW weight decay (DPOConfig).")
    max_length: StrictInt = Field(
        512, description="Prompt + completion tokens kept (TRL's keep_start truncation)."
    )
    per_device_train_batch_size: StrictInt = Field(8, description="Pairs per micro-batch.")
    per_device_eval_batch_size: StrictInt = Field(
        8,
        description="Pairs (or prompts) per batch for reference log-probs, held-out pairs and "
        "generation.",
    )
    gradient_accumulation_steps: StrictInt = Field(
        1, description="Micro-batches per optimizer step."
    )
    max_steps: StrictInt = Field(
        -1, description="Optimizer steps; -1: train num_train_epochs (TRL's convention)."
    )
    num_train_epochs: StrictFloat = Field(
        1.0, description="Passes over the train pairs when max_steps is -1."
    )
    max_grad_norm: StrictFloat = Field(1.0, description="Gradient clipping.")
    bf16: StrictBool | None = Field(
        None, description="bf16 autocast; null: on when the worker's GPU supports it."
    )
    gradient_checkpointing: StrictBool = Field(
        False, description="Trade compute for memory (TRL's default is on)."
    )
    dtype: Literal["float32", "bfloat16", "float16"] = Field(
        "float32",
        description="dtype the weights are loaded in (TRL's model_init_kwargs['dtype']); float32 "
        "keeps full-precision master weights under bf16 autocast, bfloat16 halves memory (LoRA "
        "on large models).",
    )
    lora: LoraSettings | None = Field(None, description="LoRA adapters; null: full fine-tuning.")
    reward_model: StrictStr | None = Field(
        None, description="Sequence-classification reward model: hub name or directory."
    )
    reward_label: StrictInt | None = Field(
        None,
        description="Logit used as reward; null: the only one, or the last (the positive class "
        "of a binary classifier such as a sentiment model).",
    )
    judge: JudgeSettings | None = Field(
        None, description="Pairwise judge of policy vs reference generations."
    )
    score_metric: StrictStr | None = Field(
        None,
        description="The metric the stage ranks by, one of "
        f"{list(SCORABLE_METRICS)}; null: judge/win_rate with a judge, else reward/mean with a "
        "reward model, else the held-out implicit reward accuracy.",
    )
    num_gpus: StrictFloat | None = Field(
        None, description="GPUs per job; null: 1 when the Ray cluster has a GPU, else 0."
    )
    num_cpus: StrictFloat = Field(1.0, description="CPUs per job.")
    max_seconds: StrictFloat = Field(
        4 * 3600.0, description="Wall-clock budget of one run, loading included."
    )
    max_kl: StrictFloat | None = Field(
        None, description="KL(pi || pi_ref) per sequence beyond which a run is DIVERGED."
    )
    held_out: StrictBool = Field(
        False,
        description="The stage's tasks are private: scored, never shown or selected on.",
    )

    @model_validator(mode="before")
    @classmethod
    def _refuse_secrets(cls, values: Any) -> Any:
        """API keys never enter a config: specs are archived. Checked before anything else so
        the key is never echoed in another error."""
        if not isinstance(values, Mapping):
            return values
        judge = values.get("judge")
        places = [("", values), ("judge.", judge if isinstance(judge, Mapping) else {})]
        for prefix, mapping in places:
            for key in mapping:
                if "api_key" in str(key).lower() or str(key).lower() in ("key", "token", "secret"):
                    raise StageConfigError(
                        f"{prefix}{key}",
                        "API keys never go in a stage config (campaign specs are stored in the "
                        f"archive); set {API_KEY_SETTING} (or LOSSFORGE_LLM_API_KEY) in the "
                        "environment of the process that runs the campaign",
                    )
        return values

    @model_validator(mode="after")
    def _check(self) -> HFConfig:
        for name in ("model", "dataset", "dataset_split"):
            if not getattr(self, name):
                raise StageConfigError(name, "must not be empty")
        self._check_references()
        self._check_training()
        self._check_scoring()
        if self.num_gpus is not None and self.num_gpus < 0:
            raise StageConfigError("num_gpus", f"must be >= 0 (unset: auto), got {self.num_gpus}")
        if self.num_cpus <= 0:
            raise StageConfigError("num_cpus", f"must be > 0, got {self.num_cpus}")
        if self.max_seconds <= 0:
            raise StageConfigError("max_seconds", f"must be > 0, got {self.max_seconds}")
        return self

    def _check_references(self) -> None:
        if self.ref_weights is None:
            return
        if len(self.ref_weights) != len(self.ref_models):
            raise StageConfigError(
                "ref_weights",
                f"gives {len(self.ref_weights)} weights for {len(self.ref_models)} ref_models; "
                "give one per reference model (or none for 1/K each)",
            )
        if min(self.ref_weights) < 0 or not math.isclose(sum(self.ref_weights), 1.0):
            raise StageConfigError(
                "ref_weights", f"must be >= 0 and sum to 1, got {list(self.ref_weights)}"
            )

    def _check_training(self) -> None:
        if self.betas is not None and not self.betas:
            raise StageConfigError("betas", "give at least one beta, or leave it unset")
        for value in self.betas or (self.beta,):
            if not value > 0:
                raise StageConfigError(
                    "betas" if self.betas else "beta", f"must be > 0, got {value}"
                )
        if self.learning_rate <= 0:
            raise StageConfigError("learning_rate", f"must be > 0, got {self.learning_rate}")
        for name in _POSITIVE:
            if getattr(self, name) < 1:
                raise StageConfigError(name, f"must be >= 1, got {getattr(self, name)}")
        if self.max_steps == 0 or self.max_steps < -1:
            raise StageConfigError("max_steps", "must be >= 1, or -1 to train num_train_epochs")
        if self.max_steps == -1 and self.num_train_epochs <= 0:
            raise StageConfigError("num_train_epochs", "must be > 0 when max_steps is -1")
        if self.per_device_train_batch_size > self.num_train_pairs:
            raise StageConfigError(
                "per_device_train_batch_size",
                f"({self.per_device_train_batch_size}) exceeds num_train_pairs "
                f"({self.num_train_pairs}); lower it or train on more pairs",
            )
        if self.warmup_steps < 0 or self.weight_decay < 0 or self.max_grad_norm <= 0:
            raise StageConfigError(
                "warmup_steps", "need warmup_steps >= 0, weight_decay >= 0 and max_grad_norm > 0"
            )

    def _check_scoring(self) -> None:
        if self.max_kl is not None and self.max_kl <= 0:
            raise StageConfigError("max_kl", f"must be > 0 nats (or unset), got {self.max_kl}")
        if self.num_eval_prompts < 0:
            raise StageConfigError("num_eval_prompts", f"must be >= 0, got {self.num_eval_prompts}")
        if self.num_eval_prompts == 0 and (self.reward_model or self.judge):
            raise StageConfigError(
                "num_eval_prompts", "must be >= 1 when a reward model or a judge scores generations"
            )
        if self.score_metric is None:
            return
        if self.score_metric not in SCORABLE_METRICS:
            raise StageConfigError(
                "score_metric", f"{self.score_metric!r} is not one of {list(SCORABLE_METRICS)}"
            )
        if self.score_metric == "judge/win_rate" and self.judge is None:
            raise StageConfigError("score_metric", "judge/win_rate needs a `judge`")
        if self.score_metric == "reward/mean" and self.reward_model is None:
            raise StageConfigError("score_metric", "reward/mean needs a `reward_model`")

    # -- derived -----------------------------------------------------------------------------

    @property
    def metric(self) -> str:
        """The metric this stage ranks by (higher is better)."""
        if self.score_metric is not None:
            return self.score_metric
        if self.judge is not None:
            return "judge/win_rate"
        if self.reward_model is not None:
            return "reward/mean"
        return "rewards/accuracies"

    @property
    def tasks(self) -> dict[str, bool]:
        """Task names (one per beta of the grid), each mapped to whether it is held out."""
        return {task_name(b): self.held_out for b in self.betas or (self.beta,)}

    def beta_of(self, task: str) -> float:
        """The beta a task trains with; ValueError for a task outside the grid."""
        if task not in self.tasks:
            raise ValueError(f"unknown hf task {task!r}; this config's tasks: {list(self.tasks)}")
        return float(task.removeprefix(_TASK_PREFIX))


def task_name(beta: float) -> str:
    """`beta=0.05`: repr keeps every digit, so the name parses back to the same float."""
    return f"{_TASK_PREFIX}{float(beta)!r}"
