"""Plain-function losses for trainer tests (production trainers receive sandbox-rebuilt graphs)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from evaluator.losses import Loss


def _margin(pc: torch.Tensor, pr: torch.Tensor, rc: torch.Tensor, rr: torch.Tensor) -> torch.Tensor:
    return (pc - rc) - (pr - rr)  # Δ, (B,)


def dpo_fn(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps, beta):
    margin = _margin(
        policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps
    )
    return -F.logsigmoid(beta * margin)


def rewards_rejected_fn(
    policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps, beta
):
    margin = _margin(
        policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps
    )
    return -F.logsigmoid(-beta * margin)  # DPO with the labels swapped


def nan_at_large_beta_fn(
    policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps, beta
):
    base = dpo_fn(
        policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps, beta
    )
    return base + torch.where(beta > 2.0, float("nan"), 0.0)


def nan_after_moving_fn(
    policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps, beta
):
    # log of a quantity that turns negative once the policy moves: NaN after a few steps.
    margin = _margin(
        policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps
    )
    return torch.log(0.5 - margin.abs().mean()) - F.logsigmoid(beta * margin)


def batch_standardized_fn(
    policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps, beta
):
    # A batch-statistic loss: the margin standardised over the batch (mean and std), as AQL does.
    margin = beta * _margin(
        policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps
    )
    z = (margin - margin.mean()) / (margin.std() + 1.0)
    return -F.logsigmoid(margin) * torch.sigmoid(-z)


DPO = Loss("dpo", dpo_fn)
REWARDS_REJECTED = Loss("rewards_rejected", rewards_rejected_fn)
NAN_AT_LARGE_BETA = Loss("nan_at_large_beta", nan_at_large_beta_fn)
NAN_AFTER_MOVING = Loss("nan_after_moving", nan_after_moving_fn)
BATCH_STANDARDIZED = Loss("batch_standardized", batch_standardized_fn)
