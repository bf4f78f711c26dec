"""The population trainer: K candidate losses train K copies of one policy in one pass.

`train_population` does for K losses what `trainer.train` does for one, in lockstep: the same
train pairs, the same batch order (one generator), the reference log-probs computed once and
shared. Each step runs one grouped forward/backward for all K copies (`GroupedLM`), applies each
candidate's own loss graph to its own (B,) slices of the log-probs (a loop over K modules), sums
the K mean losses and backpropagates once: the gradient of copy k depends only on loss k.
Gradient clipping is per candidate (each copy's own global norm, as `clip_grad_norm_` computes it
for one model) and the optimizer is K independent AdamWs in one: AdamW is elementwise, so the
update below is the one `torch.optim.AdamW` makes, on stacked tensors.

A candidate whose loss or gradient goes non-finite is frozen at once (its update masked on the
device, so the others' numbers do not change) and dropped from the population at the next check
of the host: every step on CPU, every `sync_every` steps on a GPU, where reading a flag back stalls
the step. A loss that raises, or returns the wrong shape or no gradient path, is dropped with
ERROR. Each candidate gets the `TrainOutcome` that `trainer.train` would give it: the same status,
reason, step, per-step losses and training curves (`trainer.step_curves` of its own (B,) slices,
kept on the device per step and read back when it leaves the population).

This module does not build data, evaluate policies or make `RunResult`s (the stage does).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch
from transformers import PreTrainedModel

from evaluator.losses import Loss, LossInputs
from evaluator.results import RunStatus
from evaluator.tinylm.grouped import GroupedLM, shared_prefix
from evaluator.tinylm.pairs import PairSet
from evaluator.tinylm.trainer import (
    RefLogps,
    TrainOutcome,
    batches,
    outcome_curves,
    output_problem,
    step_curves,
)

logger = logging.getLogger(__name__)

# torch.optim.AdamW's defaults, which `trainer.make_optimizer` uses.
_BETA1, _BETA2, _EPS = 0.9, 0.999, 1e-8
# Why a candidate left the population, as codes kept on the device until the host reads them.
_ALIVE, _BAD_LOSS, _BAD_GRAD = 0, 1, 2


@dataclass
class PopulationRun:
    """What `train_population` returns: an outcome per candidate, and the trained weights."""

    outcomes: list[TrainOutcome]  # in the order of the losses
    weights: GroupedLM  # the copies still in the population at the end
    slots: list[int]  # candidate index of each copy in `weights`


class _StackedAdamW:
    """K AdamW optimizers (no weight decay) over stacked (K, ...) parameters, with a mask.

    Elementwise the same arithmetic as torch.optim.AdamW's single-tensor path; a copy whose mask
    is False keeps its parameters and moments as they are.
    """

    def __init__(self, params: dict[str, torch.Tensor], learning_rate: float) -> None:
        self.params = params
        self.lr = learning_rate
        self.exp_avg = {n: torch.zeros_like(p) for n, p in params.items()}
        self.exp_avg_sq = {n: torch.zeros_like(p) for n, p in params.items()}
        self.steps = 0

    @torch.no_grad()
    def step(self, alive: torch.Tensor, *, masked: bool = True) -> None:
        """One update of the copies where `alive` (K,) holds; `masked=False` when the caller
        knows they all do (then the update runs in place, with no selects)."""
        self.steps += 1
        step_size = self.lr / (1 - _BETA1**self.steps)
        bias_correction2_sqrt = (1 - _BETA2**self.steps) ** 0.5
        for name, param in self.params.items():
            exp_avg, exp_avg_sq, grad = self.exp_avg[name], self.exp_avg_sq[name], param.grad
            if not masked:
                exp_avg.lerp_(grad, 1 - _BETA1)
                exp_avg_sq.mul_(_BETA2).addcmul_(grad, grad, value=1 - _BETA2)
                denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(_EPS)
                param.addcdiv_(exp_avg, denom, value=-step_size)
                continue
            keep = alive.view(-1, *([1] * (param.dim() - 1)))  # (K, 1, ...)
            grad = torch.where(keep, grad, 0.0)  # a frozen copy's NaNs stay out
            exp_avg.copy_(torch.where(keep, exp_avg.lerp(grad, 1 - _BETA1), exp_avg))
            new_sq = exp_avg_sq.mul(_BETA2).addcmul_(grad, grad, value=1 - _BETA2)
            exp_avg_sq.copy_(torch.where(keep, new_sq, exp_avg_sq))
            denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(_EPS)
            param.copy_(torch.where(keep, param.addcdiv(exp_avg, denom, value=-step_size), param))

    def select(self, keep: torch.Tensor, params: dict[str, torch.Tensor]) -> None:
        """Keep the moments of copies `keep` (indices) for the new, compacted `params`."""
        self.params = params
        self.exp_avg = {n: t[keep] for n, t in self.exp_avg.items()}
        self.exp_avg_sq = {n: t[keep] for n, t in self.exp_avg_sq.items()}


def _clip_per_copy(params: dict[str, torch.Tensor], max_norm: float | None) -> torch.Tensor:
    """Clip each copy's gradient to its own global norm; returns the pre-clip norms (K,)."""
    grads = [p.grad for p in params.values()]
    per_tensor = torch.stack([g.flatten(1).norm(dim=1) for g in grads])  # (tensors, K)
    norms = per_tensor.norm(dim=0)  # (K,) as clip_grad_norm_: the norm of per-tensor norms
    if max_norm is not None:
        coef = torch.clamp(max_norm / (norms + 1e-6), max=1.0)  # (K,)
        for g in grads:
            g.mul_(coef.view(-1, *([1] * (g.dim() - 1))))
    return norms


def train_population(
    reference: PreTrainedModel,
    pairs: PairSet,
    ref: RefLogps,
    losses: Sequence[Loss],
    *,
    beta: float,
    learning_rate: float,
    per_device_train_batch_size: int,
    max_steps: int,
    max_grad_norm: float | None,
    generator: torch.Generator,
    deadline: float | None = None,
    sync_every: int | None = None,
) -> PopulationRun:
    """Train K = len(losses) copies of `reference` for `max_steps` steps, on its device.

    `sync_every`: steps between reads of the alive flags (default: 1 on CPU, 16 on a GPU).
    """
    device = next(reference.parameters()).device
    sync_every = sync_every or (1 if device.type == "cpu" else 16)
    k_all, n, b = len(losses), len(pairs), per_device_train_batch_size
    state = _Population(GroupedLM.from_model(reference, k_all), learning_rate, max_steps)
    lengths = pairs.lengths  # (2N,) completion token counts
    seq_len = pairs.input_ids.ne(reference.config.pad_token_id).sum(dim=1)  # (2N,) real tokens
    beta_t = torch.tensor(beta, dtype=ref.chosen.dtype, device=device)  # () as in graphs
    batch_iter = batches(n, b, generator)

    for step in range(1, max_steps + 1):
        if deadline is not None and time.monotonic() > deadline:
            state.settle()
            for index in state.slots:
                reason = f"time budget spent before step {step}"
                state.finish(index, RunStatus.TIMEOUT, reason, step - 1)
            break
        if not state.slots:
            break
        idx = next(batch_iter)  # (B,) on the host, as the lean loop draws it
        rows = torch.cat([idx, idx + n])  # (2B,) chosen rows, then rejected rows
        width = int(seq_len[rows].max())  # trim the batch's common padding
        ids = pairs.input_ids[rows, :width]
        prefix = shared_prefix(ids)  # on the host: no device read-back
        mask = pairs.completion_mask[rows, :width].to(device)
        logps = state.model.pair_logps(ids.to(device), mask, prefix)  # (K, 2B)
        inputs = LossInputs(
            policy_chosen_logps=logps[:, :b],  # (K, B); each loss gets its row below
            policy_rejected_logps=logps[:, b:],
            ref_chosen_logps=ref.chosen[idx].to(device),  # (B,) shared by every candidate
            ref_rejected_logps=ref.rejected[idx].to(device),
            beta=beta_t,
            chosen_lengths=lengths[idx].to(device),
            rejected_lengths=lengths[idx + n].to(device),
        )
        inputs = replace(  # (1, B): a single reference model
            inputs,
            refs_chosen_logps=inputs.ref_chosen_logps[None],
            refs_rejected_logps=inputs.ref_rejected_logps[None],
        )
        means, finite, usable = state.apply(losses, inputs, step)  # (K,), (K,), K bools
        state.record(
            step,
            step_curves(
                means,
                inputs.policy_chosen_logps,
                inputs.policy_rejected_logps,
                inputs.ref_chosen_logps,
                inputs.ref_rejected_logps,
                beta_t,
            ),  # (3, K)
        )
        state.update(means, finite, usable, step, max_grad_norm)
        if step % sync_every == 0:
            state.settle()

    state.settle()
    for index in state.slots:
        if index not in state.outcomes:
            state.finish(index, RunStatus.DONE, None, max_steps)
    return PopulationRun([state.outcomes[i] for i in range(k_all)], state.model, state.slots)


class _Population:
    """The copies still training, their optimizer, and each candidate's record so far."""

    def __init__(self, model: GroupedLM, learning_rate: float, max_steps: int) -> None:
        k, device = model.k, model.params["wte"].device
        self.model = model
        self.optimizer = _StackedAdamW(model.params, learning_rate)
        self.slots = list(range(k))  # candidate index of each copy in `model`
        self.outcomes: dict[int, TrainOutcome] = {}
        # Per candidate, on the device: mean loss of each completed step, why and when it left.
        self.history = torch.full((max_steps, k), float("nan"), device=device)
        # Per step and candidate, on the device: loss, reward margin, KL (`step_curves`).
        self.curves = torch.full((max_steps, 3, k), float("nan"), device=device)
        self.code = torch.full((k,), _ALIVE, dtype=torch.long, device=device)
        self.stop_step = torch.zeros(k, dtype=torch.long, device=device)
        self.stop_loss = torch.zeros(k, device=device)
        self.errored: set[int] = set()  # candidates whose loss raised or was unusable
        self.index = torch.arange(k, device=device)  # `slots` on the device

    def finish(
        self,
        index: int,
        status: RunStatus,
        reason: str | None,
        steps: int,
        points: int | None = None,
    ) -> None:
        """Record candidate `index`'s outcome after `steps` completed steps; its curves have
        `points` points (default `steps`; one more where the step that stopped it counts)."""
        points = steps if points is None else points
        self.outcomes[index] = TrainOutcome(
            status,
            self.history[:steps, index].tolist(),
            reason,
            steps,
            outcome_curves(self.curves[:points, :, index]),
        )

    @torch.no_grad()
    def record(self, step: int, values: torch.Tensor) -> None:
        """Store step `step`'s curve values (3, K) of the copies in the population."""
        self.curves[step - 1][:, self.index] = values.to(self.curves.dtype)  # (3, K) view

    def apply(
        self, losses: Sequence[Loss], inputs: LossInputs, step: int
    ) -> tuple[torch.Tensor, torch.Tensor, list[bool]]:
        """Each candidate's loss on its own slices: mean loss (K,), all finite (K,), and whether
        the loss could be used at all (K bools, on the host)."""
        rows: list[torch.Tensor] = []  # (B,) per copy
        usable: list[bool] = []
        for pos, index in enumerate(self.slots):
            per_example = None
            if index not in self.errored:  # an errored copy keeps its place until settle()
                own = replace(
                    inputs,
                    policy_chosen_logps=inputs.policy_chosen_logps[pos],
                    policy_rejected_logps=inputs.policy_rejected_logps[pos],
                )
                per_example = self._call(losses[index], own, index, step)
            usable.append(per_example is not None)
            if per_example is None:
                per_example = inputs.ref_chosen_logps.new_zeros(inputs.ref_chosen_logps.shape)
            rows.append(per_example.to(inputs.policy_chosen_logps.dtype))
        per_example = torch.stack(rows)  # (K, B)
        return per_example.mean(dim=1), torch.isfinite(per_example).all(dim=1), usable

    def _call(self, loss: Loss, inputs: LossInputs, index: int, step: int) -> torch.Tensor | None:
        """The loss's (B,) output, or None (recorded as ERROR) where the lean loop would stop."""
        try:
            per_example = loss(inputs)  # (B,)
        except Exception as exc:  # the sequential run ends here with ERROR and no steps
            logger.warning("loss %s raised at step %d: %r", loss.name, step, exc)
            self.outcomes[index] = TrainOutcome(RunStatus.ERROR, [], f"{type(exc).__name__}: {exc}")
            self.errored.add(index)
            return None
        problem = output_problem(per_example, inputs.policy_chosen_logps.shape[0])
        if problem:
            self.finish(index, RunStatus.ERROR, problem, step - 1)
            self.errored.add(index)
            return None
        return per_example

    def update(
        self,
        means: torch.Tensor,
        finite_loss: torch.Tensor,
        usable: list[bool],
        step: int,
        max_grad_norm: float | None,
    ) -> None:
        """Backward, per-copy clipping and the masked AdamW step; flags candidates that fail."""
        if not any(usable):
            return  # nothing to train this step; settle() drops the unusable copies
        index = self.index
        alive = self.code[index] == _ALIVE
        if not all(usable):
            alive = alive & torch.tensor(usable, device=alive.device)
        for p in self.model.params.values():
            p.grad = None
        # Sum of the K mean losses: copy k's gradient is exactly the gradient of loss k.
        torch.where(alive & finite_loss, means, 0.0).sum().backward()
        norms = _clip_per_copy(self.model.params, max_grad_norm)
        bad_loss = alive & ~finite_loss
        bad_grad = alive & finite_loss & ~torch.isfinite(norms)
        code = self.code[index]
        self.code[index] = torch.where(bad_loss, _BAD_LOSS, torch.where(bad_grad, _BAD_GRAD, code))
        self.stop_step[index] = torch.where(bad_loss | bad_grad, step, self.stop_step[index])
        self.stop_loss[index] = torch.where(bad_loss, means.detach().float(), self.stop_loss[index])
        alive = alive & ~bad_loss & ~bad_grad
        # On CPU reading the flags costs nothing: skip the masking when every copy is alive.
        self.optimizer.step(alive, masked=alive.device.type != "cpu" or not bool(alive.all()))
        self.history[step - 1, index] = torch.where(alive, means.detach().float(), float("nan"))

    def settle(self) -> None:
        """Read the device's flags: record the candidates that left and drop their copies."""
        codes, steps, values = self.code.tolist(), self.stop_step.tolist(), self.stop_loss.tolist()
        keep = []
        for pos, index in enumerate(self.slots):
            if index in self.errored:
                continue
            if codes[index] == _BAD_LOSS:
                reason = f"loss is non-finite at step {steps[index]} ({values[index]})"
                self.finish(index, RunStatus.NAN_LOSS, reason, steps[index] - 1, steps[index])
            elif codes[index] == _BAD_GRAD:
                reason = f"gradient is non-finite at step {steps[index]}"
                self.finish(index, RunStatus.NAN_LOSS, reason, steps[index] - 1, steps[index])
            else:
                keep.append(pos)
        if len(keep) < len(self.slots):
            chosen = torch.tensor(keep, dtype=torch.long, device=self.code.device)
            self.model = self.model.select(chosen)
            self.optimizer.select(chosen, self.model.params)
            self.slots = [self.slots[pos] for pos in keep]
            self.index = self.index[chosen]
