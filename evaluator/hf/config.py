"""The hf stage's config: frozen dataclasses with TRL's DPOConfig names, and their parser.

`HFConfig` says what to train (policy, references, dataset), how (DPOConfig fields, optional LoRA
with peft's field names), how to score (reward model, LLM judge, held-out pairs) and what a job
asks Ray for. `parse_hf_config` builds one from the plain data of a campaign spec or a job,
checking types and unknown fields, so a bad field is an `HFConfigError` naming it (`lora.r`).

The stage's tasks are the points of a beta grid: task `beta=0.05` trains with beta 0.05.

This module imports nothing heavy (no torch, TRL or pydantic): the spec parser and the engine use
it to validate configs and name tasks. It loads nothing and knows no secrets: the judge's API key
is never a field here (specs are archived); it reaches a worker beside the config.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from evaluator.hf.errors import HFConfigError

# Metrics a stage may rank by; higher is better for each. `kl/ref` is reported, never ranked by.
SCORABLE_METRICS = ("judge/win_rate", "reward/mean", "rewards/accuracies", "rewards/margins")
API_KEY_SETTING = "LOSSFORGE_JUDGE_API_KEY"
_TASK_PREFIX = "beta="


@dataclass(frozen=True)
class LoraSettings:
    """LoRA adapters through peft; field names follow peft's LoraConfig."""

    r: int = 16  # adapter rank
    lora_alpha: float = 32.0  # scaling numerator: updates are scaled by lora_alpha / r
    lora_dropout: float = 0.05  # dropout on the adapter input during training
    # Modules that get adapters; None lets peft choose for known architectures
    # (GPT-2: c_attn; Llama: q_proj, v_proj).
    target_modules: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.r < 1:
            raise HFConfigError("r", f"must be >= 1, got {self.r}")
        if self.lora_alpha <= 0:
            raise HFConfigError("lora_alpha", f"must be > 0, got {self.lora_alpha}")
        if not 0.0 <= self.lora_dropout < 1.0:
            raise HFConfigError("lora_dropout", f"must lie in [0, 1), got {self.lora_dropout}")


@dataclass(frozen=True)
class JudgeSettings:
    """An OpenAI-compatible chat endpoint that compares two answers to one prompt.

    Its API key is not a field: it comes from LOSSFORGE_JUDGE_API_KEY (falling back to
    LOSSFORGE_LLM_API_KEY), never from a spec.
    """

    base_url: str  # e.g. https://api.openai.com/v1 or http://localhost:8001/v1 (vLLM)
    model: str  # the judge model the endpoint serves
    prompt_price: float = 0.0  # USD per million prompt tokens (0 for a local endpoint)
    completion_price: float = 0.0  # USD per million completion tokens
    timeout_s: float = 60.0  # per request
    max_retries: int = 2  # the openai client's retries (with backoff) per request
    max_concurrency: int = 4  # requests in flight at once
    max_tokens: int = 16  # the verdict is one letter; a little room for a model that pads it

    def __post_init__(self) -> None:
        if not self.base_url.startswith(("http://", "https://")):
            raise HFConfigError("base_url", f"must be an http(s) URL, got {self.base_url!r}")
        if not self.model:
            raise HFConfigError("model", "name the judge model the endpoint serves")
        if min(self.prompt_price, self.completion_price) < 0:
            raise HFConfigError("prompt_price", "prices must be >= 0 (USD per million tokens)")
        if self.timeout_s <= 0 or self.max_retries < 0 or self.max_concurrency < 1:
            raise HFConfigError(
                "timeout_s", "need timeout_s > 0, max_retries >= 0 and max_concurrency >= 1"
            )
        if self.max_tokens < 1:
            raise HFConfigError("max_tokens", f"must be >= 1, got {self.max_tokens}")


@dataclass(frozen=True)
class HFConfig:
    """One hf stage: what to train, how, how to score it, and what a job asks Ray for.

    The task (a beta of the grid) and the seed are arguments of `run_hf`, not fields.
    """

    model: str  # policy: a hub name ("gpt2") or a local directory saved with save_pretrained
    dataset: str  # preference data: a hub name, a local dataset directory, or a .jsonl file
    tokenizer: str | None = None  # hub name or directory; None: the policy's
    # Reference models (hub names or directories); empty: the policy's initial weights. With K of
    # them a loss gets their combined log-probs sum_k w_k logp_k, and (K, B) tensors if it asks.
    ref_models: tuple[str, ...] = ()
    ref_weights: tuple[float, ...] | None = None  # w_k, summing to 1; None: 1/K each
    dataset_config: str | None = None  # the hub dataset's configuration name, if it has several
    dataset_split: str = "train"  # split that train pairs come from
    # Split that held-out pairs and prompts come from; None: the last rows of dataset_split,
    # set aside before train pairs are drawn, the same for every seed.
    eval_split: str | None = None
    num_train_pairs: int = 1024  # drawn from the train split with the run's seed
    num_eval_pairs: int = 128  # held-out pairs: implicit reward accuracy and margins
    num_eval_prompts: int = 64  # held-out prompts the policy answers (KL, reward, judge); 0: none
    max_new_tokens: int = 64  # tokens generated per held-out prompt (temperature 1)
    # DPOConfig fields.
    beta: float = 0.1  # KL strength when `betas` is None (the only task, "beta=0.1")
    betas: tuple[float, ...] | None = None  # a beta grid: one task per value
    learning_rate: float = 1e-6  # TRL's default; AdamW
    lr_scheduler_type: Literal["linear", "cosine", "constant", "constant_with_warmup"] = "linear"
    warmup_steps: int = 0
    weight_decay: float = 0.0
    max_length: int = 512  # prompt + completion tokens kept (TRL's keep_start truncation)
    per_device_train_batch_size: int = 8  # pairs per micro-batch
    per_device_eval_batch_size: int = 8  # pairs (or prompts) per batch for reference log-probs,
    # held-out pairs and generation
    gradient_accumulation_steps: int = 1  # micro-batches per optimizer step
    max_steps: int = -1  # optimizer steps; -1: train num_train_epochs (TRL's convention)
    num_train_epochs: float = 1.0  # passes over the train pairs when max_steps is -1
    max_grad_norm: float = 1.0  # gradient clipping
    bf16: bool | None = None  # bf16 autocast; None: on when the worker's GPU supports it
    gradient_checkpointing: bool = False  # trade compute for memory (TRL's default is on)
    # dtype the weights are loaded in (TRL's model_init_kwargs["dtype"]); float32 keeps full-
    # precision master weights under bf16 autocast, bfloat16 halves memory (LoRA on large models).
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    lora: LoraSettings | None = None  # None: full fine-tuning
    # Scoring. The score metric is `score_metric` if set, else judge/win_rate with a judge, else
    # reward/mean with a reward model, else the held-out implicit reward accuracy.
    reward_model: str | None = None  # sequence-classification model: hub name or directory
    reward_label: int | None = None  # logit used as reward; None: the only one, or the last
    # (the positive class of a binary classifier such as a sentiment model)
    judge: JudgeSettings | None = None  # pairwise judge of policy vs reference generations
    score_metric: str | None = None  # one of SCORABLE_METRICS
    # Resources and limits.
    num_gpus: float | None = None  # per job; None: 1 when the Ray cluster has a GPU, else 0
    num_cpus: float = 1.0  # per job
    max_seconds: float = 4 * 3600.0  # wall-clock budget of one run, loading included
    max_kl: float | None = None  # KL(pi || pi_ref) per sequence beyond which a run DIVERGED
    held_out: bool = False  # the stage's tasks are private: scored, never shown or selected on

    def __post_init__(self) -> None:
        for name in ("model", "dataset", "dataset_split"):
            if not getattr(self, name):
                raise HFConfigError(name, "must not be empty")
        self._check_references()
        self._check_training()
        self._check_scoring()
        if self.num_gpus is not None and self.num_gpus < 0:
            raise HFConfigError("num_gpus", f"must be >= 0 (unset: auto), got {self.num_gpus}")
        if self.num_cpus <= 0:
            raise HFConfigError("num_cpus", f"must be > 0, got {self.num_cpus}")
        if self.max_seconds <= 0:
            raise HFConfigError("max_seconds", f"must be > 0, got {self.max_seconds}")

    def _check_references(self) -> None:
        if self.ref_weights is None:
            return
        if len(self.ref_weights) != len(self.ref_models):
            raise HFConfigError(
                "ref_weights",
                f"gives {len(self.ref_weights)} weights for {len(self.ref_models)} ref_models; "
                "give one per reference model (or none for 1/K each)",
            )
        if min(self.ref_weights) < 0 or not math.isclose(sum(self.ref_weights), 1.0):
            raise HFConfigError(
                "ref_weights", f"must be >= 0 and sum to 1, got {list(self.ref_weights)}"
            )

    def _check_training(self) -> None:
        if self.betas is not None and not self.betas:
            raise HFConfigError("betas", "give at least one beta, or leave it unset")
        for value in self.betas or (self.beta,):
            if not (value > 0 and math.isfinite(value)):
                raise HFConfigError("betas" if self.betas else "beta", f"must be > 0, got {value}")
        if self.learning_rate <= 0:
            raise HFConfigError("learning_rate", f"must be > 0, got {self.learning_rate}")
        positive = (
            "num_train_pairs",
            "num_eval_pairs",
            "max_new_tokens",
            "max_length",
            "per_device_train_batch_size",
            "per_device_eval_batch_size",
            "gradient_accumulation_steps",
        )
        for name in positive:
            if getattr(self, name) < 1:
                raise HFConfigError(name, f"must be >= 1, got {getattr(self, name)}")
        if self.max_steps == 0 or self.max_steps < -1:
            raise HFConfigError("max_steps", "must be >= 1, or -1 to train num_train_epochs")
        if self.max_steps == -1 and self.num_train_epochs <= 0:
            raise HFConfigError("num_train_epochs", "must be > 0 when max_steps is -1")
        if self.per_device_train_batch_size > self.num_train_pairs:
            raise HFConfigError(
                "per_device_train_batch_size",
                f"({self.per_device_train_batch_size}) exceeds num_train_pairs "
                f"({self.num_train_pairs}); lower it or train on more pairs",
            )
        if self.warmup_steps < 0 or self.weight_decay < 0 or self.max_grad_norm <= 0:
            raise HFConfigError(
                "warmup_steps", "need warmup_steps >= 0, weight_decay >= 0 and max_grad_norm > 0"
            )

    def _check_scoring(self) -> None:
        if self.max_kl is not None and self.max_kl <= 0:
            raise HFConfigError("max_kl", f"must be > 0 nats (or unset), got {self.max_kl}")
        if self.num_eval_prompts < 0:
            raise HFConfigError("num_eval_prompts", f"must be >= 0, got {self.num_eval_prompts}")
        if self.num_eval_prompts == 0 and (self.reward_model or self.judge):
            raise HFConfigError(
                "num_eval_prompts", "must be >= 1 when a reward model or a judge scores generations"
            )
        if self.score_metric is None:
            return
        if self.score_metric not in SCORABLE_METRICS:
            raise HFConfigError(
                "score_metric", f"{self.score_metric!r} is not one of {list(SCORABLE_METRICS)}"
            )
        if self.score_metric == "judge/win_rate" and self.judge is None:
            raise HFConfigError("score_metric", "judge/win_rate needs a `judge`")
        if self.score_metric == "reward/mean" and self.reward_model is None:
            raise HFConfigError("score_metric", "reward/mean needs a `reward_model`")

    # -- derived -------------------------------------------------------------------------------

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


# -- parsing plain data --------------------------------------------------------------------------


def parse_hf_config(values: Mapping[str, Any]) -> HFConfig:
    """An HFConfig from JSON-like data (lists for tuples, dicts for lora and judge).

    Raises HFConfigError naming the field for unknown fields, wrong types and invalid values, and
    refuses API keys with a pointer to the setting that holds them.
    """
    _refuse_secrets(values)
    return _build(HFConfig, values, prefix="")


def _refuse_secrets(values: Mapping[str, Any]) -> None:
    judge = values.get("judge")
    places = [("", values), ("judge.", judge if isinstance(judge, Mapping) else {})]
    for prefix, mapping in places:
        for key in mapping:
            if "api_key" in str(key).lower() or str(key).lower() in ("key", "token", "secret"):
                raise HFConfigError(
                    f"{prefix}{key}",
                    "API keys never go in a stage config (campaign specs are stored in the "
                    f"archive); set {API_KEY_SETTING} (or LOSSFORGE_LLM_API_KEY) in the "
                    "environment of the process that runs the campaign",
                )


def _build(cls: type, values: Mapping[str, Any], prefix: str) -> Any:
    if not isinstance(values, Mapping):
        raise HFConfigError(prefix.rstrip(".") or "config", "must be a mapping of fields")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise HFConfigError(
            f"{prefix}{unknown[0]}", f"unknown field; {cls.__name__} has {sorted(fields)}"
        )
    missing = [
        name
        for name, f in fields.items()
        if f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
        and name not in values
    ]
    if missing:
        raise HFConfigError(f"{prefix}{missing[0]}", "is required")
    hints = typing.get_type_hints(cls)
    converted = {
        name: _convert(value, hints[name], f"{prefix}{name}") for name, value in values.items()
    }
    try:
        return cls(**converted)
    except HFConfigError as exc:
        if not prefix:
            raise
        raise HFConfigError(f"{prefix}{exc.field}", exc.message) from None


def _convert(value: Any, hint: Any, where: str) -> Any:
    """`value` as type `hint` (the few kinds config fields use), or HFConfigError."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _convert(value, arg, where)
            except HFConfigError as exc:
                errors.append(exc)
        raise errors[-1]
    if origin is Literal:
        if value not in args:
            raise HFConfigError(where, f"must be one of {list(args)}, got {value!r}")
        return value
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise HFConfigError(where, f"must be a list, got {type(value).__name__}")
        return tuple(_convert(v, args[0], where) for v in value)
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, prefix=f"{where}.")
    return _scalar(value, hint, where)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


# type -> (what the error says it must be, the check); bools are not numbers here.
_SCALARS: dict[type, tuple[str, Callable[[Any], bool]]] = {
    bool: ("true or false", lambda v: isinstance(v, bool)),
    int: ("an integer", lambda v: isinstance(v, int) and not isinstance(v, bool)),
    float: ("a number", _is_number),
    str: ("a string", lambda v: isinstance(v, str)),
}


def _scalar(value: Any, hint: Any, where: str) -> Any:
    if hint not in _SCALARS:
        raise TypeError(f"no conversion to {hint!r} for {where}")  # a new field kind: extend this
    what, check = _SCALARS[hint]
    if not check(value):
        raise HFConfigError(where, f"must be {what}, got {value!r}")
    return float(value) if hint is float else value
