"""TRL's DPOTrainer and the lean loop, set up to take the same steps on the same batch.

Used by the agreement test and the benchmarks (`bench/evaluator.py`, `bench/population.py`),
never by `run_tinylm`. Everything a
step depends on is aligned: the same starting weights (copies of one reference), the same
tokenization (our tokenizer is TRL's processing class; TRL appends eos to each completion, and the
pairs' ids already end with it), keep-start truncation at the same `max_length`, no dropout, one
precision (the models' dtype; TRL's default bf16 autocast is off), AdamW without weight decay at a
constant learning rate (one optimizer factory for both), the same gradient clipping, and a dataset
of exactly one batch, so every step of both sides sees every pair (the order of pairs within a
batch does not change a mean). TRL runs a frozen copy of the reference each step for its reference
log-probs; the lean loop computes them once. TRL is configured only through its public API.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from datasets import Dataset
from transformers import PreTrainedModel, PreTrainedTokenizerFast
from trl import DPOConfig, DPOTrainer

from evaluator.losses import Loss
from evaluator.results import RunStatus
from evaluator.tinylm.pairs import PairSet
from evaluator.tinylm.trainer import make_optimizer, reference_logps, train


@dataclass(frozen=True)
class StepSettings:
    """The hyperparameters both trainers share (TRL's names)."""

    beta: float = 1.0  # as TinyLMConfig
    learning_rate: float = 5e-4
    max_steps: int = 5
    max_length: int = 32
    max_grad_norm: float = 1.0
    seed: int = 0  # TRL's sampler order; the lean loop's batch order (irrelevant: one batch)


@dataclass(frozen=True)
class LeanRun:
    """One timed lean run with `pairs` as its one batch."""

    losses: list[float]  # per step
    loop_seconds: float  # the training loop alone
    total_seconds: float  # reference log-probs included, as they are part of a lean run


def lean_run(
    reference: PreTrainedModel, pairs: PairSet, loss: Loss, settings: StepSettings
) -> LeanRun:
    """Train a copy of `reference` with the lean loop; raises if the loop does not finish."""
    policy = copy.deepcopy(reference).requires_grad_(True)
    start = time.perf_counter()
    ref = reference_logps(reference, pairs)  # once, as in run_tinylm
    loop_start = time.perf_counter()
    outcome = train(
        policy,
        pairs,
        ref,
        loss,
        beta=settings.beta,
        learning_rate=settings.learning_rate,
        per_device_train_batch_size=len(pairs),
        max_steps=settings.max_steps,
        max_grad_norm=settings.max_grad_norm,
        generator=torch.Generator().manual_seed(settings.seed),
    )
    end = time.perf_counter()
    if outcome.status is not RunStatus.DONE:
        raise RuntimeError(f"lean loop failed: {outcome.reason}")
    return LeanRun(outcome.losses, end - loop_start, end - start)


def lean_losses(
    reference: PreTrainedModel, pairs: PairSet, loss: Loss, settings: StepSettings
) -> tuple[list[float], float]:
    """Per-step losses of the lean loop and its steps per second (reference log-probs included)."""
    run = lean_run(reference, pairs, loss, settings)
    return run.losses, settings.max_steps / run.total_seconds


class RecordingDPOTrainer(DPOTrainer):
    """DPOTrainer that keeps (loss, time.perf_counter()) of every training step in `recorded`
    (the logged loss is rounded and averaged over logging steps)."""

    recorded: list[tuple[float, float]]

    def compute_loss(self, model: Any, inputs: Any, *args: Any, **kwargs: Any) -> Any:
        out = super().compute_loss(model, inputs, *args, **kwargs)
        loss = out[0] if isinstance(out, tuple) else out
        if model.training:
            self.recorded.append((loss.detach().item(), time.perf_counter()))
        return out


def build_trl_trainer(
    reference: PreTrainedModel,
    tokenizer: PreTrainedTokenizerFast,
    pairs: PairSet,
    settings: StepSettings,
    output_dir: Path,
    *,
    trl_defaults: bool = False,
) -> RecordingDPOTrainer:
    """A DPOTrainer (sigmoid loss) aligned with the lean loop.

    With `trl_defaults`, TRL keeps its own defaults where they only change speed (bf16 autocast,
    activation checkpointing, logging): the trainer a user gets when they set only the task's
    fields on a CPU. Its losses then differ slightly (bf16); the benchmark times it.
    """
    policy = copy.deepcopy(reference).requires_grad_(True)
    optimizer = make_optimizer(policy, settings.learning_rate)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)  # constant
    args = DPOConfig(
        output_dir=str(output_dir),
        loss_type=["sigmoid"],
        beta=settings.beta,
        learning_rate=settings.learning_rate,
        max_steps=settings.max_steps,
        max_length=settings.max_length,
        max_grad_norm=settings.max_grad_norm,
        per_device_train_batch_size=len(pairs),
        seed=settings.seed,
        lr_scheduler_type="constant",
        weight_decay=0.0,
        use_cpu=True,
        disable_dropout=True,
        precompute_ref_log_probs=False,
        report_to="none",
        save_strategy="no",
        disable_tqdm=True,
        dataloader_num_workers=0,
        **(
            {}
            if trl_defaults
            else {
                "bf16": False,  # TRL defaults to bf16 autocast; both sides use the models' dtype
                "fp16": False,
                "activation_checkpointing": False,  # TRL's default is on; trades speed for memory
                "logging_strategy": "no",  # losses are recorded by compute_loss, unrounded
            }
        ),
    )
    trainer = RecordingDPOTrainer(
        model=policy,
        ref_model=copy.deepcopy(reference),
        args=args,
        train_dataset=Dataset.from_list(pairs.records()),
        processing_class=tokenizer,
        optimizers=(optimizer, scheduler),
    )
    trainer.recorded = []
    return trainer


def trl_losses(
    reference: PreTrainedModel,
    tokenizer: PreTrainedTokenizerFast,
    pairs: PairSet,
    settings: StepSettings,
    output_dir: Path,
) -> tuple[list[float], float]:
    """Per-step losses of TRL's DPOTrainer with `pairs` as its one batch, and its steps per
    second (trainer construction excluded)."""
    trainer = build_trl_trainer(reference, tokenizer, pairs, settings, output_dir)
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    return [loss for loss, _ in trainer.recorded], settings.max_steps / seconds
