"""The bandit stage: known behaviour of DPO, exact metrics, failures as statuses."""

from __future__ import annotations

import functools
import itertools

import numpy as np
import pytest
import torch

from evaluator.bandit import FAMILIES, BanditConfig, make_problem, run_bandit
from evaluator.bandit.train import _Applier, _inputs, _log_policy, train_runs
from evaluator.results import RunResult, RunStatus
from evaluator.scoring import aggregate, versus_dpo
from tests.evaluator.configs import with_fields
from tests.evaluator.plain_losses import (
    BATCH_STANDARDIZED,
    DPO,
    NAN_AFTER_MOVING,
    NAN_AT_LARGE_BETA,
    REWARDS_REJECTED,
)

CONFIG = BanditConfig()


@functools.cache
def dpo_run(family: str, seed: int) -> RunResult:
    """DPO's run at the default config; deterministic, so computed once per session."""
    return run_bandit(DPO, task=family, seed=seed, config=CONFIG)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_dpo_reward_rises_with_training(family: str) -> None:
    short = run_bandit(DPO, task=family, seed=0, config=with_fields(CONFIG, max_steps=5))
    full = dpo_run(family, 0)
    assert short.status is RunStatus.DONE and full.status is RunStatus.DONE
    assert 0.0 < short.metrics["reward/normalized"] < full.metrics["reward/normalized"] <= 1.0
    assert full.losses[-1] < full.losses[0]  # and the loss it minimises went down


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_dpo_kl_falls_as_beta_rises(family: str) -> None:
    result = dpo_run(family, 1)
    kls = [result.metrics[f"frontier/kl/beta={beta:g}"] for beta in sorted(CONFIG.beta_grid)]
    assert all(a > b for a, b in itertools.pairwise(kls)), kls


def test_metrics_are_deterministic_per_seed() -> None:
    first = run_bandit(DPO, task="tabular", seed=3, config=CONFIG)
    again = run_bandit(DPO, task="tabular", seed=3, config=CONFIG)
    other = run_bandit(DPO, task="tabular", seed=4, config=CONFIG)
    assert first.metrics == again.metrics and first.losses == again.losses
    assert first.metrics != other.metrics


def seed_score(candidate: RunResult, baseline: RunResult) -> float:
    """One seed's paired difference at the bandit stage: frontier areas."""
    return versus_dpo("bandit", "frontier/area", candidate.metrics, baseline.metrics)


def test_a_loss_that_rewards_the_rejected_answer_loses_reward() -> None:
    result = run_bandit(REWARDS_REJECTED, task="tabular", seed=0, config=CONFIG)
    dpo = dpo_run("tabular", 0)
    assert result.metrics["reward/normalized"] < 0.0
    assert result.metrics["frontier/area"] == 0.0
    assert seed_score(result, dpo) < 0.0


def test_preservation_is_exact_for_tabular_and_measured_for_shared_features() -> None:
    tabular = dpo_run("tabular", 0)
    shared = dpo_run("shared_features", 0)
    # A tabular policy's prompts without data get no gradient at all.
    assert tabular.metrics["preservation/kl"] == 0.0
    assert shared.metrics["preservation/kl"] > 0.01


def test_noise_robustness_is_measured() -> None:
    result = dpo_run("tabular", 0)
    # Flipping a fifth of the labels costs DPO reward.
    assert result.metrics["noise/reward_drop"] > 0.0


def test_nan_at_the_main_beta_is_a_status_with_the_step() -> None:
    result = run_bandit(NAN_AFTER_MOVING, task="tabular", seed=0, config=CONFIG)
    assert result.status is RunStatus.NAN_LOSS
    assert "non-finite at step" in result.reason
    assert result.metrics == {}  # no numbers that could pass for fitness


def test_nan_at_one_grid_beta_drops_that_point_only() -> None:
    result = run_bandit(NAN_AT_LARGE_BETA, task="tabular", seed=0, config=CONFIG)
    dpo = dpo_run("tabular", 0)
    assert result.status is RunStatus.DONE
    assert result.metrics["frontier/failed_points"] == 1.0
    assert "frontier/kl/beta=3" not in result.metrics
    # The runs that did not fail are untouched by the one that did.
    assert result.metrics["frontier/kl/beta=0.1"] == pytest.approx(
        dpo.metrics["frontier/kl/beta=0.1"]
    )


def test_batch_statistics_see_one_run_at_a_time() -> None:
    """vmap over runs and a plain loop over runs give the same per-example losses."""
    problem = make_problem(FAMILIES["tabular"], np.random.default_rng(0))
    betas = torch.tensor([0.1, 1.0], dtype=torch.float64)
    params = torch.randn(2, *problem.ref_logits.shape, dtype=torch.float64)
    chosen = torch.stack([problem.pair_chosen] * 2)
    rejected = torch.stack([problem.pair_rejected] * 2)
    tensors = _inputs(problem, _log_policy(problem, params), chosen, rejected)
    vmapped = _Applier(BATCH_STANDARDIZED)
    looped = _Applier(BATCH_STANDARDIZED)
    looped.use_vmap = False
    batched = vmapped(betas, tensors)
    assert vmapped.use_vmap  # this loss's ops have batching rules
    torch.testing.assert_close(batched, looped(betas, tensors))
    # Each run's statistics are its own: run 1 alone gives the same losses as inside the stack.
    alone = BATCH_STANDARDIZED.fn(
        **{k: v[1] for k, v in tensors.items() if not k.startswith(("refs", "chosen_l", "rej"))},
        beta=betas[1],
    )
    torch.testing.assert_close(batched[1], alone)


def test_stacked_runs_match_separate_runs() -> None:
    problem = make_problem(FAMILIES["shared_features"], np.random.default_rng(2))
    kwargs = {"learning_rate": 0.1, "max_steps": 20}
    both = train_runs(
        problem,
        DPO,
        betas=torch.tensor([0.1, 1.0], dtype=torch.float64),
        chosen=torch.stack([problem.pair_chosen] * 2),
        rejected=torch.stack([problem.pair_rejected] * 2),
        **kwargs,
    )
    single = train_runs(
        problem,
        DPO,
        betas=torch.tensor([1.0], dtype=torch.float64),
        chosen=problem.pair_chosen[None],
        rejected=problem.pair_rejected[None],
        **kwargs,
    )
    torch.testing.assert_close(both.log_policy[1], single.log_policy[0])


def test_scores_are_paired_differences_with_spread() -> None:
    per_seed = []
    for seed in range(3):
        candidate = run_bandit(BATCH_STANDARDIZED, task="tabular", seed=seed, config=CONFIG)
        baseline = dpo_run("tabular", seed)
        per_seed.append(seed_score(candidate, baseline))
    score = aggregate(per_seed)
    assert score.seeds == 3
    # Per-seed differences are kept to 1e-6 (float noise is not evidence).
    assert score.score == pytest.approx(np.mean(per_seed), abs=1e-6)
    assert score.spread == pytest.approx(np.std(per_seed, ddof=1), abs=1e-6)
    assert score.low is not None and score.low < score.score < score.high  # type: ignore[operator]
    assert aggregate([None, None]).score is None


def test_dpo_against_itself_scores_zero() -> None:
    a = dpo_run("noisy", 5)
    b = run_bandit(DPO, task="noisy", seed=5, config=CONFIG)
    assert seed_score(a, b) == 0.0


def test_bad_configs_and_tasks_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown bandit task 'nope'"):
        run_bandit(DPO, task="nope", seed=0, config=CONFIG)
    with pytest.raises(ValueError, match="positive"):
        BanditConfig(beta_grid=(0.1, -1.0))
    with pytest.raises(ValueError, match="extra_label_noise"):
        BanditConfig(extra_label_noise=0.5)
