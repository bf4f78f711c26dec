"""`run_bandit`: one loss, one problem family, one seed -> exact metrics of the desiderata.

One call trains, side by side, a policy per beta of a grid (the reward-vs-KL frontier) plus one on
labels with extra noise at the main beta, all from the same sampled problem and pairs. Metrics
(slash names, all exact expectations):

- `reward/normalized`: (E_pi[r] - E_ref[r]) / (max_y r - E_ref[r]) on prompts with data, main beta.
- `kl/ref`: KL(pi || pi_ref) on prompts with data, main beta.
- `preservation/kl`: KL(pi || pi_ref) on prompts without data (0 is perfect preservation).
- `noise/reward_drop`: how much `reward/normalized` falls when extra labels are flipped.
- `frontier/area`: area under the candidate's reward-vs-KL envelope over the beta grid, as a
  fraction of the area under the exact optimal frontier (pi*_beta for every beta) over the same KL
  range; reward and KL over all prompts, so KL spent on prompts without data is KL wasted.

Each result carries the main run's training curves (`RunResult.curves`): loss, `rewards/margins`
and `kl/ref` (exact, on prompts with data) per step, through the step a failed run died at.

`run_bandit_population` gives K losses, for the same family and seed, the results `run_bandit`
gives each: one problem and one set of pairs, the K x R runs trained stacked (`train_population`,
`population_size` losses at a time), the metrics computed per loss from its own runs.

It does not compare with DPO (see `evaluator.scoring`).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from evaluator.bandit.problems import FAMILIES, BanditProblem, make_problem, optimal_policy
from evaluator.bandit.train import (
    RunBatch,
    TimeShare,
    TimeShareExceededError,
    expected_reward,
    kl_to_ref,
    train_population,
    train_runs,
)
from evaluator.losses import Loss
from evaluator.results import (
    CURVE_KL,
    CURVE_LOSS,
    CURVE_MARGIN,
    Curves,
    RunResult,
    RunStatus,
    training_curves,
)
from evaluator.stage_configs import BanditConfig


@dataclass(frozen=True)
class _Setup:
    """One family and seed: the problem and the R runs every loss trains."""

    problem: BanditProblem
    grid: list[float]  # betas of the frontier, sorted
    main: int  # index of config.beta in grid
    betas: torch.Tensor  # (R,) the grid, then config.beta again for the noisy-label run
    chosen: torch.Tensor  # (R, N)
    rejected: torch.Tensor  # (R, N)


def _setup(task: str, seed: int, config: BanditConfig) -> _Setup:
    if task not in FAMILIES:
        raise ValueError(f"unknown bandit task {task!r}; choose one of {sorted(FAMILIES)}")
    rng = np.random.default_rng(seed)
    problem = make_problem(FAMILIES[task], rng)
    noisy = problem.flip_labels(config.extra_label_noise, rng)
    grid = sorted(set(config.beta_grid) | {config.beta})
    return _Setup(
        problem=problem,
        grid=grid,
        main=grid.index(config.beta),
        betas=torch.tensor([*grid, config.beta], dtype=torch.float64),  # last run: noisy labels
        chosen=torch.stack([problem.pair_chosen] * len(grid) + [noisy.pair_chosen]),
        rejected=torch.stack([problem.pair_rejected] * len(grid) + [noisy.pair_rejected]),
    )


def run_bandit(loss: Loss, *, task: str, seed: int, config: BanditConfig) -> RunResult:
    """Train `loss` on family `task` with problem and data drawn from `seed`."""
    started = time.perf_counter()
    setup = _setup(task, seed, config)
    batch = train_runs(
        setup.problem,
        loss,
        betas=setup.betas,
        chosen=setup.chosen,
        rejected=setup.rejected,
        learning_rate=config.learning_rate,
        max_steps=config.max_steps,
    )
    return _result(setup, batch, task=task, config=config, seconds=time.perf_counter() - started)


def run_bandit_population(
    losses: Sequence[Loss], *, task: str, seed: int, config: BanditConfig
) -> list[RunResult]:
    """`run_bandit` for each of `losses` (same family, seed, config), trained stacked.

    A loss that raises or returns the wrong shape gets an ERROR result (where `run_bandit`
    raises); the others are untouched. Each result's `seconds` is its share of the call's time.
    """
    started = time.perf_counter()
    setup = _setup(task, seed, config)
    results: list[RunResult] = []
    for first in range(0, len(losses), config.population_size):
        group = losses[first : first + config.population_size]
        population = train_population(
            setup.problem,
            group,
            betas=setup.betas,
            chosen=setup.chosen,
            rejected=setup.rejected,
            learning_rate=config.learning_rate,
            max_steps=config.max_steps,
            time_share=TimeShare(
                config.loss_time_multiple, config.loss_time_floor_s, config.loss_time_max_s
            ),
        )
        for k, error in enumerate(population.errors):
            if isinstance(error, TimeShareExceededError):
                results.append(RunResult(status=RunStatus.TIMEOUT, reason=str(error)))
            elif error is not None:
                reason = f"{type(error).__name__}: {str(error)[:500]}"
                results.append(RunResult(status=RunStatus.ERROR, reason=reason))
            else:
                results.append(_result(setup, population.of(k), task=task, config=config))
    share = (time.perf_counter() - started) / max(1, len(losses))
    return [dataclasses.replace(result, seconds=share) for result in results]


def _result(
    setup: _Setup, batch: RunBatch, *, task: str, config: BanditConfig, seconds: float = 0.0
) -> RunResult:
    """One loss's result from its R runs."""
    problem, grid, main = setup.problem, setup.grid, setup.main
    losses = batch.losses[:, main].tolist()
    for run, what in ((main, "the main run"), (len(grid), "the label-noise run")):
        if not batch.alive[run]:
            step = int(batch.failed_step[run])
            return RunResult(
                status=RunStatus.NAN_LOSS,
                reason=f"loss or its gradient became non-finite at step {step} of {what} "
                f"(beta={config.beta}, task={task})",
                losses=losses[:step],
                steps=step,
                seconds=seconds,
                curves=_curves(batch, main, step + 1),  # through the step that failed
            )

    reward_main = _normalized_reward(problem, batch.log_policy[main])
    metrics = {
        "reward/normalized": reward_main,
        "kl/ref": float(kl_to_ref(problem, batch.log_policy[main])[problem.seen].mean()),
        "preservation/kl": _unseen_kl(problem, batch.log_policy[main]),
        "noise/reward_drop": reward_main - _normalized_reward(problem, batch.log_policy[-1]),
        "frontier/area": _frontier_area(
            problem, batch.log_policy[: len(grid)], batch.alive[: len(grid)], min(grid)
        ),
        "frontier/failed_points": float((~batch.alive[: len(grid)]).sum()),
        "loss/final": losses[-1],
    }
    # The frontier's points (all prompts), for reward-vs-KL plots; a dead run has none.
    for run, beta in enumerate(grid):
        if batch.alive[run]:
            log_policy = batch.log_policy[run]
            metrics[f"frontier/kl/beta={beta:g}"] = float(kl_to_ref(problem, log_policy).mean())
            metrics[f"frontier/reward/beta={beta:g}"] = _normalized_reward(
                problem, log_policy, prompts=torch.ones_like(problem.seen)
            )
    return RunResult(
        status=RunStatus.DONE,
        metrics=metrics,
        losses=losses,
        steps=config.max_steps,
        seconds=seconds,
        curves=_curves(batch, main, config.max_steps),
    )


def _curves(batch: RunBatch, run: int, points: int) -> Curves:
    """Run `run`'s curves over its first `points` steps (optimizer steps 1..points)."""
    return training_curves(
        range(1, points + 1),
        {
            CURVE_LOSS: batch.curve_loss[:points, run].tolist(),
            CURVE_MARGIN: batch.margins[:points, run].tolist(),
            CURVE_KL: batch.kls[:points, run].tolist(),
        },
    )


def _normalized_reward(
    problem: BanditProblem, log_policy: torch.Tensor, prompts: torch.Tensor | None = None
) -> float:
    """Mean over `prompts` (default: those with data) of the gain as a fraction of the headroom."""
    log_ref = torch.log_softmax(problem.ref_logits, dim=-1)
    gain = expected_reward(problem, log_policy) - expected_reward(problem, log_ref)  # (P,)
    headroom = problem.rewards.max(dim=-1).values - expected_reward(problem, log_ref)  # (P,)
    return float((gain / headroom)[problem.seen if prompts is None else prompts].mean())


def _unseen_kl(problem: BanditProblem, log_policy: torch.Tensor) -> float:
    unseen = ~problem.seen
    return float(kl_to_ref(problem, log_policy)[unseen].mean()) if unseen.any() else 0.0


def _frontier_area(
    problem: BanditProblem, log_policies: torch.Tensor, alive: torch.Tensor, min_beta: float
) -> float:
    """Candidate envelope area / optimal frontier area over KL in [0, KL(pi*_min_beta)]."""
    log_ref = torch.log_softmax(problem.ref_logits, dim=-1)
    ref_reward = float(expected_reward(problem, log_ref).mean())

    # The exact optimal frontier, traced densely in beta; KL rises as beta falls.
    dense = np.geomspace(min_beta, 1e3, 256)
    optimal = [optimal_policy(problem, float(b)) for b in dense]
    opt_kl = np.array([float(kl_to_ref(problem, lp).mean()) for lp in optimal])[::-1]
    opt_gain = np.array([float(expected_reward(problem, lp).mean()) for lp in optimal])[::-1]
    opt_gain -= ref_reward
    budget = np.linspace(0.0, opt_kl[-1], 256)  # KL budgets k
    best_possible = np.interp(budget, opt_kl, opt_gain)

    # The candidate's best reward within each budget, from the points it reached (ref at KL 0).
    kls = kl_to_ref(problem, log_policies).mean(dim=-1)[alive].numpy()  # (R_alive,)
    gains = expected_reward(problem, log_policies).mean(dim=-1)[alive].numpy() - ref_reward
    achieved = np.array([max([0.0, *gains[kls <= k].tolist()]) for k in budget])
    return float(np.clip(achieved, 0.0, None).sum() / max(best_possible.sum(), 1e-12))
