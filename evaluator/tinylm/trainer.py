"""The lean DPO-family training loop: cached reference log-probs, one forward per step.

`train` fine-tunes a policy (a copy of the reference) on a `PairSet` with any contract loss.
Reference log-probs are computed once, before the first step, and indexed per batch. Each step
runs one forward over the batch's chosen and rejected rows together (2B rows, as TRL does), sums
completion log-probs to (B,) tensors, calls the loss through `Loss.__call__`, takes the mean,
backpropagates, clips the gradient norm and steps AdamW (no weight decay, constant learning rate).
A non-finite loss or gradient stops the run with NAN_LOSS and the step; a loss of the wrong shape
or with no gradient path to the policy stops it with ERROR.

Each step also records its training curves (`step_curves`, read under no_grad from the step's
tensors, so training is unchanged): the mean loss, the mean implicit reward margin and `kl/ref`,
the batch's mean of log pi_ref - log pi over its chosen and rejected completions. Those are samples
of the reference, so this estimates KL(pi_ref || pi) per sequence: the cheap per-step companion of
the stage's final `kl/ref` (Monte Carlo KL(pi || pi_ref) on the policy's own samples, which would
cost a generation per step). A step that stops the run (non-finite loss or gradient) is recorded
too, its non-finite loss as None.

This module does not evaluate the policy (metrics.py) or build data (pairs.py), and it returns a
`TrainOutcome`, not a `RunResult`: the stage decides what a run's result is.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
from transformers import PreTrainedModel

from evaluator.losses import Loss, LossInputs
from evaluator.results import CURVE_KL, CURVE_LOSS, CURVE_MARGIN, Curves, RunStatus, training_curves
from evaluator.tinylm.model import sequence_logps
from evaluator.tinylm.pairs import PairSet


@dataclass(frozen=True)
class RefLogps:
    """Reference summed log-probs of a PairSet's completions, computed once."""

    chosen: torch.Tensor  # (N,)
    rejected: torch.Tensor  # (N,)


@dataclass(frozen=True)
class TrainOutcome:
    """What the loop did: DONE, or why it stopped."""

    status: RunStatus
    losses: list[float] = field(default_factory=list)  # mean loss per completed step
    reason: str | None = None
    steps: int = 0
    curves: Curves = field(default_factory=dict)  # see `step_curves`; {} if no step ran


@torch.no_grad()
def step_curves(
    mean_loss: torch.Tensor,
    policy_chosen: torch.Tensor,
    policy_rejected: torch.Tensor,
    ref_chosen: torch.Tensor,
    ref_rejected: torch.Tensor,
    beta: torch.Tensor,
) -> torch.Tensor:
    """(3, ...) one step's loss, reward margin and KL estimate; policy log-probs (..., B), the
    reference's (B,), `mean_loss` (...). Kept on the device: reading them back costs a sync."""
    chosen, rejected = policy_chosen.detach(), policy_rejected.detach()
    margin = (beta * ((chosen - ref_chosen) - (rejected - ref_rejected))).mean(dim=-1)  # (...)
    # Completions sampled from the reference: E_ref[log ref - log pi] = KL(pi_ref || pi).
    kl = ((ref_chosen - chosen) + (ref_rejected - rejected)).mean(dim=-1) / 2  # (...)
    return torch.stack([mean_loss.detach().to(margin.dtype), margin, kl])


def outcome_curves(points: list[torch.Tensor] | torch.Tensor) -> Curves:
    """Curves from per-step `step_curves` values: a list of (3,), or a (S, 3) tensor."""
    if len(points) == 0:  # the run stopped before its first step's loss
        return {}
    table = torch.stack(points) if isinstance(points, list) else points  # (S, 3)
    loss, margin, kl = table.double().cpu().T.tolist()
    return training_curves(
        range(1, len(loss) + 1), {CURVE_LOSS: loss, CURVE_MARGIN: margin, CURVE_KL: kl}
    )


@torch.no_grad()
def reference_logps(reference: PreTrainedModel, pairs: PairSet, batch_size: int = 256) -> RefLogps:
    """Summed completion log-probs of every pair under the (frozen) reference, on the host."""
    device = next(reference.parameters()).device
    out = [
        sequence_logps(
            reference,
            pairs.input_ids[i : i + batch_size].to(device),
            pairs.completion_mask[i : i + batch_size].to(device),
        ).cpu()
        for i in range(0, len(pairs.input_ids), batch_size)
    ]
    logps = torch.cat(out)  # (2N,)
    return RefLogps(chosen=logps[: len(pairs)], rejected=logps[len(pairs) :])


def make_optimizer(model: PreTrainedModel, learning_rate: float) -> torch.optim.Optimizer:
    """AdamW as TRL's default, without weight decay (so the reference is the only anchor)."""
    return torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=0.0)


def batches(n: int, batch_size: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    """Endless pair indices (B,): a fresh permutation per epoch, the tail of an epoch dropped."""
    if batch_size > n:
        raise ValueError(f"batch size {batch_size} exceeds the {n} pairs available")
    while True:
        order = torch.randperm(n, generator=generator)
        for start in range(0, n - batch_size + 1, batch_size):
            yield order[start : start + batch_size]


def output_problem(per_example: object, batch_size: int) -> str | None:
    """Why a loss's output cannot be trained on, or None if it can."""
    if not isinstance(per_example, torch.Tensor):
        return f"loss returned a {type(per_example).__name__}, not a tensor"
    if per_example.shape != (batch_size,):
        return f"loss returned shape {tuple(per_example.shape)}, expected ({batch_size},)"
    if not per_example.requires_grad:
        return "loss has no gradient path to the policy log-probs"
    return None


def train(
    policy: PreTrainedModel,
    pairs: PairSet,
    ref: RefLogps,
    loss: Loss,
    *,
    beta: float,
    learning_rate: float,
    per_device_train_batch_size: int,
    max_steps: int,
    max_grad_norm: float | None,
    generator: torch.Generator,
    deadline: float | None = None,
    optimizer: torch.optim.Optimizer | None = None,
) -> TrainOutcome:
    """Train `policy` in place for `max_steps` steps; `deadline` is a time.monotonic() value.

    Pairs, reference log-probs and batch order live on the host; each batch moves to the
    policy's device (a no-op on CPU).
    """
    optimizer = optimizer or make_optimizer(policy, learning_rate)
    params = [p for p in policy.parameters() if p.requires_grad]
    device = params[0].device
    n = len(pairs)
    lengths = pairs.lengths  # (2N,) int64 completion token counts, as the contract says
    seq_len = pairs.input_ids.ne(policy.config.pad_token_id).sum(dim=1)  # (2N,) real tokens
    beta_t = torch.tensor(beta, dtype=ref.chosen.dtype, device=device)  # () as inside graphs
    policy.train()
    losses: list[float] = []  # one mean loss per completed step
    points: list[torch.Tensor] = []  # (3,) per step run, the one that stopped the run included

    def stop(status: RunStatus, reason: str) -> TrainOutcome:
        return TrainOutcome(status, losses, reason, len(losses), outcome_curves(points))

    batch_iter = batches(n, per_device_train_batch_size, generator)
    for step in range(1, max_steps + 1):
        if deadline is not None and time.monotonic() > deadline:
            return stop(RunStatus.TIMEOUT, f"time budget spent before step {step}")
        idx = next(batch_iter)  # (B,)
        rows = torch.cat([idx, idx + n])  # (2B,) chosen rows, then rejected rows
        width = int(seq_len[rows].max())  # trim the batch's common padding
        ids = pairs.input_ids[rows, :width].to(device)
        mask = pairs.completion_mask[rows, :width].to(device)
        policy_chosen, policy_rejected = sequence_logps(policy, ids, mask).chunk(2)  # (B,), (B,)
        ref_chosen, ref_rejected = ref.chosen[idx].to(device), ref.rejected[idx].to(device)
        inputs = LossInputs(
            policy_chosen_logps=policy_chosen,
            policy_rejected_logps=policy_rejected,
            ref_chosen_logps=ref_chosen,
            ref_rejected_logps=ref_rejected,
            beta=beta_t,
            chosen_lengths=lengths[idx].to(device),
            rejected_lengths=lengths[idx + n].to(device),
            refs_chosen_logps=ref_chosen[None],  # (1, B): a single reference model
            refs_rejected_logps=ref_rejected[None],
        )
        per_example = loss(inputs)  # (B,)
        problem = output_problem(per_example, len(idx))
        if problem:
            return stop(RunStatus.ERROR, problem)
        batch_loss = per_example.mean()
        step_values = step_curves(
            batch_loss, policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta_t
        )  # (3,)
        points.append(step_values)
        if not torch.isfinite(per_example).all():
            return stop(
                RunStatus.NAN_LOSS, f"loss is non-finite at step {step} ({batch_loss.item()})"
            )
        optimizer.zero_grad(set_to_none=True)
        batch_loss.backward()
        # Clipping returns the pre-clip norm, which is non-finite iff some gradient is.
        grad_norm = torch.nn.utils.clip_grad_norm_(params, max_grad_norm or float("inf"))
        if not torch.isfinite(grad_norm):
            return stop(RunStatus.NAN_LOSS, f"gradient is non-finite at step {step}")
        optimizer.step()
        losses.append(batch_loss.item())
    policy.eval()
    return TrainOutcome(RunStatus.DONE, losses, None, max_steps, outcome_curves(points))
