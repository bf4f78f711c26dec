"""Evaluation of a trained policy on held-out prompts and held-out pairs.

- `reward/mean`: mean true reward of policy samples (temperature 1) on held-out prompts;
  `reward/ref_mean` is the same for the reference with the same generator seed (common random
  numbers, so the difference is less noisy than either).
- `kl/ref`: Monte Carlo KL(pi || pi_ref) per sequence: the mean over the policy's samples of
  log pi(y|x) - log pi_ref(y|x), both summed over the completion tokens (eos included).
- `rewards/accuracies`: on held-out pairs, the fraction where the implicit reward margin
  β[(π_c - ref_c) - (π_r - ref_r)] is positive (DPO eq. 5's reward, TRL's metric name).
- `rewards/margins`: the mean of that margin.
- `logps/chosen_drift`, `logps/rejected_drift`: mean change of held-out chosen (rejected) summed
  log-probs from the reference to the policy; DPO-family losses often push both down.

This module does not train and does not judge (no thresholds): the stage does.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import PreTrainedModel

from evaluator.tinylm.model import sample, sequence_logps
from evaluator.tinylm.pairs import PairSet
from evaluator.tinylm.reference import Reference
from evaluator.tinylm.tasks import Tokens
from evaluator.tinylm.tokenizer import decode, encode
from evaluator.tinylm.trainer import RefLogps


@dataclass(frozen=True)
class Generations:
    """Samples of one model on a list of prompts, with their true rewards."""

    sequences: torch.Tensor  # (N, P+M) prompt + completion, pad after eos
    completion_mask: torch.Tensor  # (N, P+M) 1 on generated tokens up to the first eos
    rewards: torch.Tensor  # (N,)


def generate(
    model: PreTrainedModel, reference: Reference, prompts: list[Tokens], seed: int
) -> Generations:
    """One sample per prompt from `model`, scored by the task's reward; seeded by `seed`."""
    task, tok = reference.task, reference.tokenizer
    prompt_ids = torch.tensor([encode(tok, p) for p in prompts])  # (N, P)
    seqs, mask = sample(
        model,
        prompt_ids,
        max_new_tokens=task.max_new_tokens,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        generator=torch.Generator().manual_seed(seed),
    )
    rewards = [
        task.reward(p, decode(tok, row[task.prompt_len :].tolist()))
        for p, row in zip(prompts, seqs, strict=True)
    ]
    return Generations(seqs, mask, torch.tensor(rewards, dtype=torch.float64))


@torch.no_grad()
def mc_kl(policy: PreTrainedModel, reference: PreTrainedModel, samples: Generations) -> float:
    """Monte Carlo KL(pi || pi_ref) per sequence, from samples drawn from the policy."""
    log_ratio = sequence_logps(policy, samples.sequences, samples.completion_mask) - sequence_logps(
        reference, samples.sequences, samples.completion_mask
    )  # (N,) log pi(y|x) - log pi_ref(y|x)
    return float(log_ratio.double().mean())


@torch.no_grad()
def pair_metrics(
    policy: PreTrainedModel, pairs: PairSet, ref: RefLogps, beta: float
) -> dict[str, float]:
    """Implicit reward accuracy, margin and log-prob drift on (held-out) pairs."""
    logps = sequence_logps(policy, pairs.input_ids, pairs.completion_mask)  # (2N,)
    chosen_drift, rejected_drift = (
        logps[: len(pairs)] - ref.chosen,
        logps[len(pairs) :] - ref.rejected,
    )
    margins = beta * (chosen_drift - rejected_drift)  # (N,) DPO's implicit reward margin
    return {
        "rewards/accuracies": float((margins > 0).double().mean()),
        "rewards/margins": float(margins.double().mean()),
        "logps/chosen_drift": float(chosen_drift.double().mean()),
        "logps/rejected_drift": float(rejected_drift.double().mean()),
    }


def evaluate(
    policy: PreTrainedModel,
    reference: Reference,
    *,
    prompts: list[Tokens],
    heldout_pairs: PairSet,
    heldout_ref: RefLogps,
    beta: float,
    seed: int,
    ref_samples: Generations | None = None,
) -> dict[str, float]:
    """All tinylm metrics of one trained policy, slash-named.

    `ref_samples`: the reference's samples on `prompts` with `seed`, when the caller already has
    them (they depend on neither the policy nor the loss, so a population shares one draw).
    """
    policy.eval()
    policy_samples = generate(policy, reference, prompts, seed)
    if ref_samples is None:
        ref_samples = generate(reference.model, reference, prompts, seed)
    return {
        "reward/mean": float(policy_samples.rewards.mean()),
        "reward/ref_mean": float(ref_samples.rewards.mean()),
        "kl/ref": mc_kl(policy, reference.model, policy_samples),
        **pair_metrics(policy, heldout_pairs, heldout_ref, beta),
    }
