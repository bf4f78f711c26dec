"""The hf stage: one loss, one beta of the grid, one seed -> one `RunResult`.

`run_hf` loads the tokenizer, the policy, the reference models, the reward model (first, so a
missing one fails before hours of training) and the preference data; trains the policy with TRL's
DPOTrainer and the candidate's loss (`trl_adapter`), full fine-tuning or LoRA, on the GPU when the
worker has one (bf16 where it is supported) and otherwise on the CPU; then scores it:

- always: implicit reward accuracy, margins and log-prob drift on the held-out pairs, and which
  fraction of the trainable (and, under LoRA, frozen) parameter tensors changed;
- with `num_eval_prompts` > 0: one sample per held-out prompt from the policy and from the
  reference with the same seed, and `kl/ref` (Monte Carlo, against the first reference model, or
  the policy's initial weights when there is none);
- with a reward model: `reward/mean` and `reward/ref_mean` of those samples;
- with a judge: `judge/*`, the policy's samples against the reference's, both orders.

Failures come back as statuses with reasons, never as exceptions or fake scores: NAN_LOSS (the
loss, a gradient or a metric went non-finite), TIMEOUT (`max_seconds` spent during training),
DIVERGED (`kl/ref` above `max_kl`), OOM (CPU or GPU), ERROR (a model or dataset that is not there,
with what was looked for; a judge that answered nothing; anything else, with the exception).
Judge calls are returned on the result (`llm_calls`) whatever the status, and the seconds of its
phases (`timings`: load_s, including the reference log-probs; train_s; score_s). A run that
trained carries its training curves: loss and `rewards/margins` per completed step (no `kl/ref`:
a per-step KL would need samples; a step that went non-finite raised before it was recorded).

Randomness: the run seed decides the train pairs, their order (TRL's sampler) and the samples; the
held-out rows are fixed per dataset. This module does not compare against DPO (scoring does).
"""

from __future__ import annotations

import contextlib
import copy
import gc
import logging
import math
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from datasets import Dataset
from peft import LoraConfig
from transformers import PreTrainedModel

from evaluator.hf.config import HFConfig
from evaluator.hf.data import PreferenceData, load_preferences, prompt_text
from evaluator.hf.errors import HFStageError, NonFiniteError
from evaluator.hf.judge import Judge, judge_win_rate, make_openai_judge
from evaluator.hf.models import load_causal_lm, load_reward_model, load_tokenizer
from evaluator.hf.scoring import (
    Samples,
    changed_fraction,
    encode_prompts,
    generate,
    kl_estimate,
    pair_metrics,
    param_norms,
    reward_scores,
    reward_texts,
    sequence_logps,
)
from evaluator.hf.trl_adapter import CandidateDPOTrainer, dpo_args
from evaluator.losses import Loss
from evaluator.results import (
    CURVE_LOSS,
    CURVE_MARGIN,
    LLMCall,
    RunResult,
    RunStatus,
    training_curves,
)
from evaluator.tinylm.stage import derive_seed

__all__ = ["run_hf"]

logger = logging.getLogger(__name__)


def run_hf(
    loss: Loss,
    *,
    task: str,
    seed: int,
    config: HFConfig,
    api_key: str | None = None,
    judge: Judge | None = None,
) -> RunResult:
    """Train `loss` at the task's beta with `seed`; never raises for a failing run.

    `api_key` is the judge endpoint's key; `judge` replaces the OpenAI-compatible judge that
    `config.judge` describes (tests, other backends).
    """
    start = time.monotonic()
    calls: list[LLMCall] = []  # judge requests, kept whatever happens after them
    timings: dict[str, float] = {}  # phase -> seconds, filled as phases end
    fields: dict[str, Any]
    try:
        status, fields = _run(
            loss,
            beta=config.beta_of(task),
            seed=seed,
            config=config,
            deadline=start + config.max_seconds,
            judge=judge,
            api_key=api_key,
            calls=calls,
            timings=timings,
        )
    except (torch.cuda.OutOfMemoryError, MemoryError) as exc:
        status, fields = RunStatus.OOM, {"reason": f"out of memory: {str(exc)[:300]}"}
    except NonFiniteError as exc:
        status, fields = RunStatus.NAN_LOSS, {"reason": str(exc)}
    except HFStageError as exc:  # missing model or data, a silent judge: the message says why
        status, fields = RunStatus.ERROR, {"reason": str(exc)}
    except Exception as exc:  # task boundary: record the traceback, return a status
        logger.exception("hf run failed (task=%s, seed=%d, loss=%s)", task, seed, loss.name)
        status, fields = RunStatus.ERROR, {"reason": f"{type(exc).__name__}: {str(exc)[:500]}"}
    finally:
        # The trainer and its callbacks hold each other: collect them now, so a worker that runs
        # another job (or a script that runs several) gets the memory back.
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    return RunResult(
        status=status,
        seconds=time.monotonic() - start,
        llm_calls=calls,
        timings=timings,
        **fields,
    )


def _run(
    loss: Loss,
    *,
    beta: float,
    seed: int,
    config: HFConfig,
    deadline: float,
    judge: Judge | None,
    api_key: str | None,
    calls: list[LLMCall],
    timings: dict[str, float],
) -> tuple[RunStatus, dict[str, Any]]:
    """One run: (status, the other RunResult fields)."""
    phase = time.monotonic()
    use_cuda = torch.cuda.is_available() and config.num_gpus != 0
    bf16 = config.bf16 if config.bf16 is not None else use_cuda and torch.cuda.is_bf16_supported()
    device = torch.device("cuda" if use_cuda else "cpu")

    # Load everything that can be missing before the first step, the cheap things first.
    tokenizer = load_tokenizer(
        config.tokenizer or config.model, role="tokenizer" if config.tokenizer else "policy"
    )
    data = load_preferences(config, seed=derive_seed(seed, "hf-pairs") % 2**32)
    if data.conversational and not getattr(tokenizer, "chat_template", None):
        raise HFStageError(
            f"{config.dataset!r} is conversational but the tokenizer of {config.model!r} has no "
            "chat template; give a tokenizer (`tokenizer`) that has one, or plain-text data"
        )
    reward = None
    if config.reward_model is not None:
        reward = load_reward_model(config.reward_model, dtype=config.dtype)
    if config.judge is not None and judge is None:
        judge = make_openai_judge(config.judge, api_key)
    policy = load_causal_lm(config.model, role="policy", dtype=config.dtype)
    refs = [
        load_causal_lm(name, role=f"reference model {i + 1}", dtype=config.dtype)
        for i, name in enumerate(config.ref_models)
    ]
    # The policy's initial weights are the reference when there is no reference model; under
    # LoRA they stay in the model (the adapter disabled), otherwise a CPU copy keeps them for
    # sampling and KL (reference log-probs of pairs are precomputed before training).
    keep_initial = not refs and config.lora is None and config.num_eval_prompts > 0
    initial = copy.deepcopy(policy) if keep_initial else None

    with tempfile.TemporaryDirectory(prefix="lossforge-hf-") as output_dir:
        trainer = CandidateDPOTrainer(
            loss=loss,
            ref_models=refs,
            ref_weights=config.ref_weights,
            deadline=deadline,
            model=policy,
            args=dpo_args(
                config,
                beta=beta,
                seed=derive_seed(seed, "hf-trainer") % 2**31,
                output_dir=Path(output_dir),
                use_cpu=not use_cuda,
                bf16=bf16,
            ),
            train_dataset=Dataset.from_list(data.train),
            eval_dataset=Dataset.from_list(data.heldout[: config.num_eval_pairs]),
            processing_class=tokenizer,
            peft_config=_lora(config),
        )
        before = param_norms(trainer.model)
        timings["load_s"], phase = time.monotonic() - phase, time.monotonic()
        try:
            trainer.train()
        except NonFiniteError as exc:
            return RunStatus.NAN_LOSS, {**_done(trainer), "reason": str(exc)}
        finally:
            timings["train_s"], phase = time.monotonic() - phase, time.monotonic()
    done = _done(trainer)
    if trainer.timed_out_at is not None:
        return RunStatus.TIMEOUT, {
            **done,
            "reason": f"max_seconds={config.max_seconds:g} spent after step {trainer.timed_out_at}",
        }
    model = trainer.model.eval()
    after = param_norms(model)
    if not all(math.isfinite(norm) for _, norm in after.values()):
        return RunStatus.NAN_LOSS, {**done, "reason": "parameters are non-finite after training"}

    metrics: dict[str, float] = {
        **pair_metrics(trainer.heldout_logps(), beta),
        "params/trained_changed": changed_fraction(before, after, trainable=True) or 0.0,
    }
    if config.lora is not None:
        metrics["params/frozen_changed"] = changed_fraction(before, after, trainable=False) or 0.0
    if config.num_eval_prompts:
        reference = _Reference(model, refs, initial, device)
        metrics.update(
            _sample_metrics(
                model, reference, tokenizer, data, config, seed, reward, judge, calls, bf16=bf16
            )
        )

    timings["score_s"] = time.monotonic() - phase
    bad = sorted(name for name, value in metrics.items() if not math.isfinite(value))
    if bad:
        return RunStatus.NAN_LOSS, {**done, "reason": f"metrics {bad} are non-finite"}
    if config.max_kl is not None and metrics.get("kl/ref", 0.0) > config.max_kl:
        return RunStatus.DIVERGED, {
            **done,
            "reason": f"KL to the reference is {metrics['kl/ref']:.1f} nats per sequence, "
            f"above max_kl={config.max_kl:g}",
        }
    return RunStatus.DONE, {**done, "metrics": metrics}


def _sample_metrics(
    policy: Any,
    reference: _Reference,
    tokenizer: Any,
    data: PreferenceData,
    config: HFConfig,
    seed: int,
    reward: tuple[PreTrainedModel, Any] | None,
    judge: Judge | None,
    calls: list[LLMCall],
    *,
    bf16: bool,
) -> dict[str, float]:
    """KL, reward and judge metrics from one sample per held-out prompt of policy and reference.

    `reference` may be the policy itself with its adapter disabled, so each model's forward
    passes run while that model is the one in effect. Sampling runs under bf16 autocast when
    training did; the log-probs for KL run in the weights' own dtype (bf16 logits summed over a
    completion would blur a KL of a nat or so).
    """
    prompts = [row["prompt"] for row in data.heldout[: config.num_eval_prompts]]
    prompt_ids = encode_prompts(tokenizer, prompts)
    batch, gen_seed = config.per_device_eval_batch_size, derive_seed(seed, "hf-samples")
    kwargs = {"max_new_tokens": config.max_new_tokens, "batch_size": batch, "seed": gen_seed}
    device_type = next(policy.parameters()).device.type

    def sample(model: Any) -> Samples:
        with torch.autocast(device_type, dtype=torch.bfloat16, enabled=bf16):
            return generate(model, tokenizer, prompt_ids, **kwargs)

    # Same seed for both models: common random numbers make their difference less noisy.
    samples = sample(policy)
    policy_logps = sequence_logps(policy, samples, batch)  # (N,)
    with reference as ref:
        ref_samples = sample(ref)
        ref_logps = sequence_logps(ref, samples, batch)  # (N,) the reference on policy samples
    metrics = {"kl/ref": kl_estimate(policy_logps, ref_logps)}
    if reward is not None:
        model, reward_tokenizer = reward
        device = next(policy.parameters()).device
        model.to(device)
        try:
            answers = (("reward/mean", samples.texts), ("reward/ref_mean", ref_samples.texts))
            for key, texts in answers:
                scores = reward_scores(
                    model,
                    reward_tokenizer,
                    reward_texts(reward_tokenizer, prompts, texts),
                    label=config.reward_label,
                    batch_size=batch,
                )
                metrics[key] = float(scores.mean())
        finally:
            model.to("cpu")
    if judge is not None and config.judge is not None:
        metrics.update(
            judge_win_rate(
                judge,
                [prompt_text(p) for p in prompts],
                samples.texts,
                ref_samples.texts,
                seed=derive_seed(seed, "hf-judge"),
                max_concurrency=config.judge.max_concurrency,
                calls=calls,
            )
        )
    return metrics


class _Reference:
    """The reference policy for sampling and KL, entered only while it is used."""

    def __init__(
        self, policy: Any, refs: list[PreTrainedModel], initial: Any, device: torch.device
    ) -> None:
        self.policy, self.refs, self.initial, self.device = policy, refs, initial, device
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> Any:
        if self.refs or self.initial is not None:
            model = self.refs[0] if self.refs else self.initial
            model.to(self.device).eval()
            self._stack.callback(model.to, "cpu")
            return model
        # LoRA without reference models: the policy with its adapter disabled (peft's API).
        self._stack.enter_context(self.policy.disable_adapter())
        return self.policy

    def __exit__(self, *exc: object) -> None:
        self._stack.close()


def _lora(config: HFConfig) -> LoraConfig | None:
    if config.lora is None:
        return None
    lora = config.lora
    return LoraConfig(
        r=lora.r,
        lora_alpha=lora.lora_alpha,
        lora_dropout=lora.lora_dropout,
        target_modules=list(lora.target_modules) if lora.target_modules else None,
        task_type="CAUSAL_LM",
    )


def _done(trainer: CandidateDPOTrainer) -> dict[str, Any]:
    """The fields of every run that trained: per-step losses, steps and training curves (loss
    and reward margin per completed step; hf has no cheap per-step KL, so no `kl/ref`)."""
    losses = list(trainer.losses)
    curves = training_curves(
        range(1, len(losses) + 1), {CURVE_LOSS: losses, CURVE_MARGIN: list(trainer.margins)}
    )
    return {"losses": losses, "steps": trainer.state.global_step, "curves": curves}
