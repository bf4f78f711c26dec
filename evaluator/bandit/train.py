"""Full-batch training of R policies at once on one bandit problem, and their exact metrics.

The R runs (a beta grid, plus a run on noisier labels) share the problem and differ in beta and
labels. Their parameters are stacked (R, ...) and updated by one masked Adam, so a run whose loss
goes non-finite stops where it is while the others go on. The loss is applied to each run's own
(N,) slice, under `torch.func.vmap` when the loss's ops allow it (one call per step), else in a
loop: batch statistics inside a loss (mean, std over the batch) then see exactly one run's batch.

It does not choose betas or turn metrics into scores (see `stage`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from evaluator.bandit.problems import BanditProblem
from evaluator.losses import Loss, LossInputs

_ADAM_BETAS = (0.9, 0.999)
_ADAM_EPS = 1e-8


@dataclass(frozen=True)
class RunBatch:
    """What R stacked runs produced."""

    log_policy: torch.Tensor  # (R, P, K) final log pi
    alive: torch.Tensor  # (R,) False where the loss or a gradient went non-finite
    failed_step: torch.Tensor  # (R,) step at which a run died, -1 if it did not
    losses: torch.Tensor  # (S, R) mean loss per step (NaN after a run died)


def _log_policy(problem: BanditProblem, params: torch.Tensor) -> torch.Tensor:
    """(R, P, K) log pi for stacked parameters: tabular logits or shared-feature weights."""
    if problem.features is None:
        return torch.log_softmax(params, dim=-1)  # params (R, P, K)
    logits = problem.ref_logits + torch.einsum("pkd,rd->rpk", problem.features, params)
    return torch.log_softmax(logits, dim=-1)


def _initial_params(problem: BanditProblem, runs: int) -> torch.Tensor:
    if problem.features is None:
        return problem.ref_logits.expand(runs, -1, -1).clone()  # start at the reference
    return torch.zeros(runs, problem.features.shape[-1], dtype=torch.float64)


def _inputs(
    problem: BanditProblem, log_policy: torch.Tensor, chosen: torch.Tensor, rejected: torch.Tensor
) -> dict[str, torch.Tensor]:
    """The contract's tensors for every run: (R, N) log-probs, (R, 1, N) single-reference stacks."""
    log_ref = torch.log_softmax(problem.ref_logits, dim=-1)  # (P, K)
    x = problem.pair_prompt  # (N,)
    rc, rr = log_ref[x.unsqueeze(0), chosen], log_ref[x.unsqueeze(0), rejected]  # (R, N)
    return {
        "policy_chosen_logps": log_policy[:, x, :].gather(-1, chosen.unsqueeze(-1)).squeeze(-1),
        "policy_rejected_logps": log_policy[:, x, :].gather(-1, rejected.unsqueeze(-1)).squeeze(-1),
        "ref_chosen_logps": rc,
        "ref_rejected_logps": rr,
        "chosen_lengths": problem.lengths[x.unsqueeze(0), chosen],
        "rejected_lengths": problem.lengths[x.unsqueeze(0), rejected],
        "refs_chosen_logps": rc.unsqueeze(1),
        "refs_rejected_logps": rr.unsqueeze(1),
    }


class _Applier:
    """Applies a loss to every run's slice; vmap when it works for this loss, a loop otherwise."""

    def __init__(self, loss: Loss) -> None:
        self.loss = loss
        self.use_vmap = True

    def _one(self, beta: torch.Tensor, tensors: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.loss(LossInputs(beta=beta, **tensors))

    def __call__(self, betas: torch.Tensor, tensors: dict[str, torch.Tensor]) -> torch.Tensor:
        """(R, N) per-example losses."""
        if self.use_vmap:
            try:
                out = torch.func.vmap(self._one)(betas, tensors)
                if out.shape == tensors["policy_chosen_logps"].shape:
                    return out
            except Exception:
                # Ops without batching rules (or other vmap limits): fall back to the loop.
                pass
            self.use_vmap = False
        rows = [
            self._one(betas[r], {name: t[r] for name, t in tensors.items()})
            for r in range(betas.shape[0])
        ]
        return torch.stack(rows)


def train_runs(
    problem: BanditProblem,
    loss: Loss,
    *,
    betas: torch.Tensor,
    chosen: torch.Tensor,
    rejected: torch.Tensor,
    learning_rate: float,
    max_steps: int,
) -> RunBatch:
    """Train R = len(betas) policies; run r uses betas[r] and labels chosen[r], rejected[r] (N,)."""
    runs = betas.shape[0]
    params = _initial_params(problem, runs).requires_grad_(True)
    m, v = torch.zeros_like(params), torch.zeros_like(params)
    alive = torch.ones(runs, dtype=torch.bool)
    failed_step = torch.full((runs,), -1, dtype=torch.long)
    losses = torch.full((max_steps, runs), float("nan"), dtype=torch.float64)
    apply = _Applier(loss)
    view = (runs,) + (1,) * (params.dim() - 1)  # broadcast a (R,) mask over parameters

    for step in range(max_steps):
        per_example = apply(betas, _inputs(problem, _log_policy(problem, params), chosen, rejected))
        if per_example.shape != chosen.shape:
            raise ValueError(f"loss returned shape {tuple(per_example.shape)}, expected (N,)")
        run_loss = per_example.mean(dim=-1)  # (R,)
        (grad,) = torch.autograd.grad(torch.where(alive, run_loss, 0.0).sum(), params)
        finite = torch.isfinite(run_loss) & torch.isfinite(grad).reshape(runs, -1).all(dim=-1)
        newly_dead = alive & ~finite
        failed_step[newly_dead] = step
        alive &= finite
        losses[step] = torch.where(alive, run_loss.detach(), float("nan"))
        if not alive.any():
            break
        with torch.no_grad():
            # Adam (arXiv 1412.6980, Algorithm 1), masked so that dead runs keep their parameters.
            grad = torch.where(alive.view(view), grad, 0.0)
            m.mul_(_ADAM_BETAS[0]).add_(grad, alpha=1 - _ADAM_BETAS[0])
            v.mul_(_ADAM_BETAS[1]).addcmul_(grad, grad, value=1 - _ADAM_BETAS[1])
            m_hat = m / (1 - _ADAM_BETAS[0] ** (step + 1))
            v_hat = v / (1 - _ADAM_BETAS[1] ** (step + 1))
            update = learning_rate * m_hat / (v_hat.sqrt() + _ADAM_EPS)
            params.sub_(torch.where(alive.view(view), update, 0.0))

    with torch.no_grad():
        log_policy = _log_policy(problem, params)
    return RunBatch(log_policy=log_policy, alive=alive, failed_step=failed_step, losses=losses)


def expected_reward(problem: BanditProblem, log_policy: torch.Tensor) -> torch.Tensor:
    """(..., P) E_pi[r | x]."""
    return (log_policy.exp() * problem.rewards).sum(dim=-1)


def kl_to_ref(problem: BanditProblem, log_policy: torch.Tensor) -> torch.Tensor:
    """(..., P) KL(pi(.|x) || pi_ref(.|x)), exact."""
    log_ref = torch.log_softmax(problem.ref_logits, dim=-1)
    return (log_policy.exp() * (log_policy - log_ref)).sum(dim=-1)
