"""The tinylm stage: one loss (or a population of losses), one task family, one seed -> results.

`run_tinylm` loads (or trains and caches) the task's reference, builds train pairs from reference
samples with the run's seed and held-out pairs with the reference's seed (the same for every run,
so accuracies are comparable), trains a copy of the reference with the lean loop, and evaluates it
on held-out prompts. Failures come back as statuses with reasons: NAN_LOSS (non-finite loss or
gradient, with the step), DIVERGED (KL to the reference above `max_kl`), TIMEOUT (`max_seconds`
spent), OOM, ERROR (anything else, with the exception). Failed runs carry no metrics; every run
that trained carries its per-step training curves (`trainer.step_curves`), a failed one through the
step it stopped at.

Randomness: the run seed alone decides the train pairs, label noise, batch order and evaluation
samples; the reference, the held-out prompts and the held-out pairs depend only on the task and
`sft.seed`. Same seed, same result, bit for bit on one CPU thread count.

`run_tinylm_population` gives K losses, for the same task and seed, the results `run_tinylm` would
give each: the data, reference log-probs and reference samples are made once, the K policies train
together (`population.train_population`, `population_size` at a time), and each is evaluated on
its own. A candidate that fails leaves the population with its status; the others go on.

This module does not aggregate seeds or compare against DPO (the lead's scoring module does), and
it does not hide held-out families' metrics: `TASKS[name].held_out` says which are private.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import PreTrainedModel

from evaluator.losses import Loss
from evaluator.results import RunResult, RunStatus
from evaluator.stage_configs import TinyLMConfig
from evaluator.tinylm.metrics import Generations, evaluate, generate
from evaluator.tinylm.pairs import PairSet, build_pairs
from evaluator.tinylm.population import train_population
from evaluator.tinylm.reference import Reference, load_reference
from evaluator.tinylm.tasks import HELD_OUT_TASKS, PUBLIC_TASKS, TASKS, Tokens, get_task
from evaluator.tinylm.trainer import RefLogps, TrainOutcome, reference_logps, train

__all__ = [
    "HELD_OUT_TASKS",
    "PUBLIC_TASKS",
    "TASKS",
    "TinyLMConfig",
    "run_tinylm",
    "run_tinylm_population",
]

logger = logging.getLogger(__name__)


def derive_seed(seed: int, stream: str) -> int:
    """An independent 63-bit seed per (seed, purpose), so streams never share draws."""
    digest = hashlib.blake2b(f"{seed}:{stream}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1


def run_tinylm(
    loss: Loss, *, task: str, seed: int, config: TinyLMConfig, cache_dir: Path
) -> RunResult:
    """Train `loss` on tinylm task `task` with `seed`; never raises for a failing run.
    References are cached under `cache_dir` (shared by runs, by content hash)."""
    start = time.monotonic()
    deadline = None if config.max_seconds is None else start + config.max_seconds
    fields: dict[str, Any]
    try:
        status, fields = _run(
            loss, task=task, seed=seed, config=config, cache_dir=cache_dir, deadline=deadline
        )
    except MemoryError as exc:
        status, fields = RunStatus.OOM, {"reason": f"out of memory: {exc}"}
    except Exception as exc:  # task boundary: record the traceback, return a status
        logger.exception("tinylm run failed (task=%s, seed=%d, loss=%s)", task, seed, loss.name)
        status, fields = RunStatus.ERROR, {"reason": f"{type(exc).__name__}: {exc}"}
    return RunResult(status=status, seconds=time.monotonic() - start, **fields)


@dataclass(frozen=True)
class _Data:
    """What every loss of one (task, seed) trains and is evaluated on."""

    reference: Reference
    prompts: list[Tokens]  # held-out prompts for reward and KL
    heldout_pairs: PairSet
    train_pairs: PairSet
    ref_train: RefLogps
    ref_heldout: RefLogps


def _prepare(task: str, seed: int, config: TinyLMConfig, cache_dir: Path) -> _Data | str:
    """The run's data, or why it cannot be built."""
    family = get_task(task)
    reference = load_reference(
        family, model_config=config.model, sft_config=config.sft, cache_dir=cache_dir
    )
    # Held-out prompts and pairs: fixed per task and reference, the same for every run.
    fixed = config.sft.seed
    prompts = family.sample_prompts(
        config.num_eval_prompts, "heldout", np.random.default_rng(derive_seed(fixed, "prompts"))
    )
    heldout_pairs = build_pairs(
        reference,
        n_pairs=config.num_eval_pairs,
        split="heldout",
        label_noise=0.0,
        max_length=config.max_length,
        rng=np.random.default_rng(derive_seed(fixed, "eval-pairs")),
        generator=torch.Generator().manual_seed(derive_seed(fixed, "eval-pairs")),
    )
    train_pairs = build_pairs(
        reference,
        n_pairs=config.num_train_pairs,
        split="train",
        label_noise=config.label_noise,
        max_length=config.max_length,
        rng=np.random.default_rng(derive_seed(seed, "pairs")),
        generator=torch.Generator().manual_seed(derive_seed(seed, "pairs")),
    )
    if len(train_pairs) < config.per_device_train_batch_size:
        return f"only {len(train_pairs)} train pairs could be built for {task!r}"
    return _Data(
        reference=reference,
        prompts=prompts,
        heldout_pairs=heldout_pairs,
        train_pairs=train_pairs,
        ref_train=reference_logps(reference.model, train_pairs),
        ref_heldout=reference_logps(reference.model, heldout_pairs),
    )


def _judge(
    policy: PreTrainedModel,
    outcome: TrainOutcome,
    data: _Data,
    *,
    seed: int,
    config: TinyLMConfig,
    ref_samples: Generations | None = None,
) -> tuple[RunStatus, dict[str, Any]]:
    """A finished training run's status and fields: evaluated if it trained, else why not."""
    done = {"losses": outcome.losses, "steps": outcome.steps, "curves": outcome.curves}
    if outcome.status is not RunStatus.DONE:
        return outcome.status, {**done, "reason": outcome.reason}
    metrics = evaluate(
        policy,
        data.reference,
        prompts=data.prompts,
        heldout_pairs=data.heldout_pairs,
        heldout_ref=data.ref_heldout,
        beta=config.beta,
        seed=derive_seed(seed, "eval"),
        ref_samples=ref_samples,
    )
    bad = sorted(name for name, value in metrics.items() if not math.isfinite(value))
    if bad:
        return RunStatus.NAN_LOSS, {
            **done,
            "reason": f"metrics {bad} are non-finite after training",
        }
    if metrics["kl/ref"] > config.max_kl:
        return RunStatus.DIVERGED, {
            **done,
            "reason": f"KL to the reference is {metrics['kl/ref']:.1f} nats per sequence, "
            f"above max_kl={config.max_kl}",
        }
    return RunStatus.DONE, {**done, "metrics": metrics}


def _run(
    loss: Loss,
    *,
    task: str,
    seed: int,
    config: TinyLMConfig,
    cache_dir: Path,
    deadline: float | None,
) -> tuple[RunStatus, dict[str, Any]]:
    """One run: (status, the other RunResult fields)."""
    data = _prepare(task, seed, config, cache_dir)
    if isinstance(data, str):
        return RunStatus.ERROR, {"reason": data}
    policy = copy.deepcopy(data.reference.model).requires_grad_(True)
    outcome = train(
        policy, data.train_pairs, data.ref_train, loss, **_training(config, seed, deadline)
    )
    return _judge(policy, outcome, data, seed=seed, config=config)


def _training(config: TinyLMConfig, seed: int, deadline: float | None) -> dict[str, Any]:
    """The trainers' keyword arguments for a run with `seed` (the sequential loop and the
    population take the same ones, so a candidate trains alike either way)."""
    return {
        "beta": config.beta,
        "learning_rate": config.learning_rate,
        "per_device_train_batch_size": config.per_device_train_batch_size,
        "max_steps": config.max_steps,
        "max_grad_norm": config.max_grad_norm,
        "generator": torch.Generator().manual_seed(derive_seed(seed, "batches")),
        "deadline": deadline,
    }


def run_tinylm_population(
    losses: Sequence[Loss], *, task: str, seed: int, config: TinyLMConfig, cache_dir: Path
) -> list[RunResult]:
    """`run_tinylm` for each of `losses` (same task, seed, config and `cache_dir`), trained as a
    population.

    Never raises for a failing candidate. Each result's `seconds` is its share of the call's wall
    time (the call's time divided by the number of losses), so summing them counts it once.
    """
    start = time.monotonic()
    deadline = None if config.max_seconds is None else start + config.max_seconds
    outcomes: list[tuple[RunStatus, dict[str, Any]]]
    try:
        outcomes = _run_population(
            losses, task=task, seed=seed, config=config, cache_dir=cache_dir, deadline=deadline
        )
    except MemoryError as exc:
        outcomes = [(RunStatus.OOM, {"reason": f"out of memory: {exc}"})] * len(losses)
    except Exception as exc:  # task boundary: record the traceback, return a status per loss
        logger.exception("tinylm population failed (task=%s, seed=%d)", task, seed)
        outcomes = [(RunStatus.ERROR, {"reason": f"{type(exc).__name__}: {exc}"})] * len(losses)
    share = (time.monotonic() - start) / max(1, len(losses))
    return [RunResult(status=status, seconds=share, **fields) for status, fields in outcomes]


def _run_population(
    losses: Sequence[Loss],
    *,
    task: str,
    seed: int,
    config: TinyLMConfig,
    cache_dir: Path,
    deadline: float | None,
) -> list[tuple[RunStatus, dict[str, Any]]]:
    data = _prepare(task, seed, config, cache_dir)
    if isinstance(data, str):
        return [(RunStatus.ERROR, {"reason": data})] * len(losses)
    reference = data.reference
    # The reference's evaluation samples depend only on the seed: drawn once for everyone.
    ref_samples = generate(reference.model, reference, data.prompts, derive_seed(seed, "eval"))
    policy = copy.deepcopy(reference.model)  # each trained copy is written here to be evaluated
    results: list[tuple[RunStatus, dict[str, Any]]] = []
    for first in range(0, len(losses), config.population_size):
        group = losses[first : first + config.population_size]
        # The same settings and batch order as each loss's sequential run.
        run = train_population(
            reference.model,
            data.train_pairs,
            data.ref_train,
            group,
            **_training(config, seed, deadline),
        )
        position = {index: pos for pos, index in enumerate(run.slots)}
        for index, (loss, outcome) in enumerate(zip(group, run.outcomes, strict=True)):
            if outcome.status is RunStatus.DONE:
                run.weights.write_to(position[index], policy)
            try:
                results.append(
                    _judge(policy, outcome, data, seed=seed, config=config, ref_samples=ref_samples)
                )
            except Exception as exc:  # this candidate's evaluation failed; the others go on
                logger.exception("tinylm evaluation failed (task=%s, loss=%s)", task, loss.name)
                results.append((RunStatus.ERROR, {"reason": f"{type(exc).__name__}: {exc}"}))
    return results
