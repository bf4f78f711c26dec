"""Full-batch training of R policies at once on one bandit problem, and their exact metrics.

The R runs (a beta grid, plus a run on noisier labels) share the problem and differ in beta and
labels. Their parameters are stacked (R, ...) and updated by one masked Adam, so a run whose loss
goes non-finite stops where it is while the others go on. The loss is applied to each run's own
(N,) slice, under `torch.func.vmap` when the loss's ops allow it (one call per step), else in a
loop: batch statistics inside a loss (mean, std over the batch) then see exactly one run's batch.

`train_population` does the same for K losses at once: K x R runs stacked (loss k owns runs
k*R .. k*R+R-1), one log-softmax, backward and Adam step for all, each loss applied to its own R
slices. Adam is elementwise and each run's gradient depends only on its own loss, so every run
follows the trajectory it would follow alone. A loss that raises, or returns the wrong shape, is
recorded and its runs frozen; the other losses go on. So is a loss that overspends its time share
(`TimeShare`: the sandbox bounds a graph's cost, this bounds what it actually takes), so that one
slow loss cannot hold up the population it was batched with.

Each step also records, for every run still alive at its start, its training curves: the mean
loss, the mean implicit reward margin beta*((pi_c - ref_c) - (pi_r - ref_r)) and the exact
KL(pi || pi_ref) on prompts with data (the stage's `kl/ref`, at that step's policy). They are read
under no_grad from tensors the step computes anyway, so they change no draw and no number of the
training itself.

It does not choose betas or turn metrics into scores (see `stage`).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from evaluator.bandit.problems import BanditProblem
from evaluator.losses import CORE_INPUTS, Loss, LossInputs

_ADAM_BETAS = (0.9, 0.999)
_ADAM_EPS = 1e-8


class TimeShareExceededError(RuntimeError):
    """A loss took far longer than its population's others; its runs were stopped."""


@dataclass(frozen=True)
class TimeShare:
    """How long one loss of a population may take, summed over its steps so far.

    A loss is stopped once its time exceeds `floor_s` and `multiple` times the population's
    median (losses are microseconds to milliseconds a step; a pairwise one at N ~ 1152 takes
    seconds), or `max_s` on its own, however large the population's median.
    """

    multiple: float = 20.0
    floor_s: float = 2.0
    max_s: float = 120.0

    def overspent(self, spent: list[float], live: list[bool]) -> list[int]:
        """Indices of live losses over their share, given each loss's seconds so far.

        The median is the live losses' only: a loss that died at its first step stops
        accruing time, and counting its near-zero seconds would shrink every other loss's share
        to the floor (two broken losses out of three stopped a healthy DPO on a loaded machine).
        """
        running = [t for t, ok in zip(spent, live, strict=True) if ok]
        if not running:
            return []
        median = statistics.median(running)
        limit = min(max(self.floor_s, self.multiple * median), self.max_s)
        return [k for k, (t, ok) in enumerate(zip(spent, live, strict=True)) if ok and t > limit]


@dataclass(frozen=True)
class RunBatch:
    """What R stacked runs produced."""

    log_policy: torch.Tensor  # (R, P, K) final log pi
    alive: torch.Tensor  # (R,) False where the loss or a gradient went non-finite
    failed_step: torch.Tensor  # (R,) step at which a run died, -1 if it did not
    losses: torch.Tensor  # (S, R) mean loss per step (NaN after a run died)
    # Curves, (S, R) each: a run's values at every step it started alive (NaN after that), the
    # step it died at included: its loss there is the non-finite value that stopped it.
    curve_loss: torch.Tensor
    margins: torch.Tensor
    kls: torch.Tensor


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
    policy = _policy_inputs(log_policy, *_flat_index(problem, chosen, rejected))
    return {**policy, **_fixed_inputs(problem, chosen, rejected)}


def _flat_index(
    problem: BanditProblem, chosen: torch.Tensor, rejected: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Positions of each pair's chosen and rejected response in a flattened (P*K) table: (R, N)."""
    row = problem.pair_prompt.unsqueeze(0) * problem.ref_logits.shape[-1]  # (1, N)
    return row + chosen, row + rejected


def _policy_inputs(
    log_policy: torch.Tensor, flat_chosen: torch.Tensor, flat_rejected: torch.Tensor
) -> dict[str, torch.Tensor]:
    """The policy's (R, N) log-probs of the chosen and rejected responses, from (R, P, K)."""
    table = log_policy.flatten(1)  # (R, P*K)
    return {
        "policy_chosen_logps": table.gather(1, flat_chosen),
        "policy_rejected_logps": table.gather(1, flat_rejected),
    }


def _fixed_inputs(
    problem: BanditProblem, chosen: torch.Tensor, rejected: torch.Tensor
) -> dict[str, torch.Tensor]:
    """The inputs that do not change while training: reference log-probs and lengths."""
    log_ref = torch.log_softmax(problem.ref_logits, dim=-1)  # (P, K)
    x = problem.pair_prompt.unsqueeze(0)  # (1, N)
    rc, rr = log_ref[x, chosen], log_ref[x, rejected]  # (R, N)
    return {
        "ref_chosen_logps": rc,
        "ref_rejected_logps": rr,
        "chosen_lengths": problem.lengths[x, chosen],
        "rejected_lengths": problem.lengths[x, rejected],
        "refs_chosen_logps": rc.unsqueeze(1),
        "refs_rejected_logps": rr.unsqueeze(1),
    }


class _Applier:
    """Applies a loss to every run's slice; vmap when it works for this loss, a loop otherwise."""

    def __init__(self, loss: Loss) -> None:
        self.loss = loss
        self.use_vmap = True
        # Only the tensors this loss reads go through vmap (each costs it time per call).
        self.names = [n for n in CORE_INPUTS if n != "beta"] + sorted(loss.optional_inputs)

    def _one(self, beta: torch.Tensor, tensors: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.loss(LossInputs(beta=beta, **tensors))

    def _positional(self, beta: torch.Tensor, *tensors: torch.Tensor) -> torch.Tensor:
        return self._one(beta, dict(zip(self.names, tensors, strict=True)))

    def __call__(self, betas: torch.Tensor, tensors: dict[str, torch.Tensor]) -> torch.Tensor:
        """(R, N) per-example losses."""
        if self.use_vmap:
            try:
                out = torch.func.vmap(self._positional)(betas, *(tensors[n] for n in self.names))
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


@dataclass(frozen=True)
class PopulationBatch:
    """What K losses x R runs produced: loss k's runs are rows k*R .. k*R+R-1."""

    runs: RunBatch  # every run, stacked (K*R, ...)
    errors: list[Exception | None]  # per loss: why it could not be trained, or None
    runs_per_loss: int  # R

    def of(self, k: int) -> RunBatch:
        """Loss k's R runs."""
        rows = slice(k * self.runs_per_loss, (k + 1) * self.runs_per_loss)
        return RunBatch(
            log_policy=self.runs.log_policy[rows],
            alive=self.runs.alive[rows],
            failed_step=self.runs.failed_step[rows],
            losses=self.runs.losses[:, rows],
            curve_loss=self.runs.curve_loss[:, rows],
            margins=self.runs.margins[:, rows],
            kls=self.runs.kls[:, rows],
        )


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
    """Train R = len(betas) policies; run r uses betas[r] and labels chosen[r], rejected[r] (N,).

    Raises what the loss raised (or ValueError for a wrong shape)."""
    population = train_population(
        problem,
        [loss],
        betas=betas,
        chosen=chosen,
        rejected=rejected,
        learning_rate=learning_rate,
        max_steps=max_steps,
    )
    if population.errors[0] is not None:
        raise population.errors[0]
    return population.runs


def train_population(
    problem: BanditProblem,
    losses: Sequence[Loss],
    *,
    betas: torch.Tensor,
    chosen: torch.Tensor,
    rejected: torch.Tensor,
    learning_rate: float,
    max_steps: int,
    time_share: TimeShare | None = None,
) -> PopulationBatch:
    """Train R = len(betas) runs for each of K = len(losses) losses, all stacked.

    Run r of every loss uses betas[r] and labels chosen[r], rejected[r] (N,)."""
    time_share = time_share or TimeShare()
    per_loss = betas.shape[0]
    runs = per_loss * len(losses)
    betas_all = betas.repeat(len(losses))  # (K*R,)
    chosen_all, rejected_all = chosen.repeat(len(losses), 1), rejected.repeat(len(losses), 1)
    params = _initial_params(problem, runs).requires_grad_(True)
    m, v = torch.zeros_like(params), torch.zeros_like(params)
    alive = torch.ones(runs, dtype=torch.bool)
    failed_step = torch.full((runs,), -1, dtype=torch.long)
    history = torch.full((max_steps, runs), float("nan"), dtype=torch.float64)
    curves = torch.full((3, max_steps, runs), float("nan"), dtype=torch.float64)  # loss, margin, KL
    appliers = [_Applier(loss) for loss in losses]
    errors: list[Exception | None] = [None] * len(losses)
    spent = [0.0] * len(losses)  # seconds each loss has taken, summed over steps
    view = (runs,) + (1,) * (params.dim() - 1)  # broadcast a (K*R,) mask over parameters

    fixed = _fixed_inputs(problem, chosen_all, rejected_all)  # (K*R, N) each, computed once
    flat = _flat_index(problem, chosen_all, rejected_all)
    for step in range(max_steps):
        log_policy = _log_policy(problem, params)  # (K*R, P, K)
        tensors = {**_policy_inputs(log_policy, *flat), **fixed}
        per_example = _apply_losses(appliers, errors, betas_all, tensors, chosen.shape, spent)
        for k in time_share.overspent(spent, [e is None for e in errors]):
            errors[k] = TimeShareExceededError(
                f"the loss took {spent[k]:.1f} s over {step + 1} steps, more than its share "
                f"(x{time_share.multiple:g} the population's median, at least "
                f"{time_share.floor_s:g} s, at most {time_share.max_s:g} s); it was stopped so "
                "the other losses could finish"
            )
        for k, error in enumerate(errors):
            if error is not None:
                alive[k * per_loss : (k + 1) * per_loss] = False  # its runs stop; others go on
        run_loss = per_example.mean(dim=-1)  # (K*R,)
        if not alive.any():
            break
        _record(curves[:, step], problem, alive, run_loss, betas_all, tensors, log_policy)
        (grad,) = torch.autograd.grad(torch.where(alive, run_loss, 0.0).sum(), params)
        finite = torch.isfinite(run_loss) & torch.isfinite(grad).reshape(runs, -1).all(dim=-1)
        newly_dead = alive & ~finite
        failed_step[newly_dead] = step
        alive &= finite
        history[step] = torch.where(alive, run_loss.detach(), float("nan"))
        if not alive.any():
            break
        _adam_step(params, grad, (m, v), alive.view(view), step + 1, learning_rate)

    with torch.no_grad():
        log_policy = _log_policy(problem, params)
    batch = RunBatch(
        log_policy=log_policy,
        alive=alive,
        failed_step=failed_step,
        losses=history,
        curve_loss=curves[0],
        margins=curves[1],
        kls=curves[2],
    )
    return PopulationBatch(runs=batch, errors=errors, runs_per_loss=per_loss)


@torch.no_grad()
def _record(
    out: torch.Tensor,
    problem: BanditProblem,
    alive: torch.Tensor,
    run_loss: torch.Tensor,
    betas: torch.Tensor,
    tensors: dict[str, torch.Tensor],
    log_policy: torch.Tensor,
) -> None:
    """Write one step's curve values of the runs alive at its start into `out` (3, K*R)."""
    margin = (tensors["policy_chosen_logps"] - tensors["ref_chosen_logps"]) - (
        tensors["policy_rejected_logps"] - tensors["ref_rejected_logps"]
    )  # (K*R, N)
    kl = kl_to_ref(problem, log_policy.detach())[:, problem.seen].mean(dim=-1)  # (K*R,)
    values = torch.stack(
        [run_loss.detach(), (betas[:, None] * margin.detach()).mean(dim=-1), kl]
    )  # (3, K*R)
    out.copy_(torch.where(alive, values, float("nan")))


def _apply_losses(
    appliers: list[_Applier],
    errors: list[Exception | None],
    betas: torch.Tensor,
    tensors: dict[str, torch.Tensor],
    shape: torch.Size,
    spent: list[float],
) -> torch.Tensor:
    """Each loss on its own R runs' slices: (K*R, N). A loss that raises or returns the wrong
    shape is recorded in `errors` and gives zeros (its runs are stopped by the caller). The time
    each loss takes (forward here; its backward is shared) is added to `spent`."""
    per_loss = shape[0]
    blocks = []  # (R, N) per loss
    for k, apply in enumerate(appliers):
        rows = slice(k * per_loss, (k + 1) * per_loss)
        if errors[k] is None:
            started = time.perf_counter()
            try:
                out = apply(betas[rows], {name: t[rows] for name, t in tensors.items()})
                spent[k] += time.perf_counter() - started
                if out.shape != shape:
                    raise ValueError(f"loss returned shape {tuple(out.shape)}, expected (N,)")
                blocks.append(out)
                continue
            except Exception as exc:  # this loss only: the others go on
                errors[k] = exc
        blocks.append(torch.zeros(shape, dtype=betas.dtype))
    return torch.cat(blocks)


@torch.no_grad()
def _adam_step(
    params: torch.Tensor,
    grad: torch.Tensor,
    moments: tuple[torch.Tensor, torch.Tensor],
    alive: torch.Tensor,
    step: int,
    learning_rate: float,
) -> None:
    """Adam (arXiv 1412.6980, Algorithm 1), masked so that dead runs keep their parameters."""
    m, v = moments
    grad = torch.where(alive, grad, 0.0)
    m.mul_(_ADAM_BETAS[0]).add_(grad, alpha=1 - _ADAM_BETAS[0])
    v.mul_(_ADAM_BETAS[1]).addcmul_(grad, grad, value=1 - _ADAM_BETAS[1])
    m_hat = m / (1 - _ADAM_BETAS[0] ** step)
    v_hat = v / (1 - _ADAM_BETAS[1] ** step)
    update = learning_rate * m_hat / (v_hat.sqrt() + _ADAM_EPS)
    params.sub_(torch.where(alive, update, 0.0))


def expected_reward(problem: BanditProblem, log_policy: torch.Tensor) -> torch.Tensor:
    """(..., P) E_pi[r | x]."""
    return (log_policy.exp() * problem.rewards).sum(dim=-1)


def kl_to_ref(problem: BanditProblem, log_policy: torch.Tensor) -> torch.Tensor:
    """(..., P) KL(pi(.|x) || pi_ref(.|x)), exact."""
    log_ref = torch.log_softmax(problem.ref_logits, dim=-1)
    return (log_policy.exp() * (log_policy - log_ref)).sum(dim=-1)
