"""Paired intervals, Student-t quantiles, Spearman's rho and DPO's reward-KL frontier, on
constructed numbers with known answers."""

from __future__ import annotations

import math

import pytest

from evaluator.frontier import Frontier, Point, point_metrics, points_from_metrics
from evaluator.scoring import aggregate, frontier_tasks, versus_dpo
from evaluator.stats import paired, ranks, spearman, t975


def test_t_quantiles_match_published_values() -> None:
    # Tables of Student's t (two-sided 95%): df 1, 4, 30, 60, 120 and the normal limit.
    assert t975(1) == pytest.approx(12.706, abs=1e-3)
    assert t975(4) == pytest.approx(2.776, abs=1e-3)
    assert t975(30) == pytest.approx(2.042, abs=1e-3)
    assert t975(60) == pytest.approx(2.000, abs=1e-3)
    assert t975(120) == pytest.approx(1.980, abs=1e-3)
    assert t975(10**6) == pytest.approx(1.960, abs=1e-3)
    with pytest.raises(ValueError, match="degrees of freedom"):
        t975(0)


def test_paired_interval_by_hand() -> None:
    # Differences 0.1, 0.2, 0.3: mean 0.2, sd 0.1, half-width t(2) * 0.1 / sqrt(3).
    p = paired([0.1, 0.2, 0.3])
    half = 4.3027 * 0.1 / math.sqrt(3)
    assert (p.mean, p.n, p.sd) == (pytest.approx(0.2), 3, pytest.approx(0.1))
    assert (p.low, p.high) == (pytest.approx(0.2 - half), pytest.approx(0.2 + half))
    assert p.low is not None and p.high is not None
    assert p.low < 0 < p.high  # 3 seeds of +0.2 +- 0.1 are not enough
    assert not p.above_zero and not p.below_zero


def test_paired_significance_and_failed_seeds() -> None:
    steady = paired([0.10, 0.11, 0.09, 0.10, None, math.nan])  # failed runs are no evidence
    assert steady.n == 4 and steady.above_zero
    assert paired([-0.2, -0.21, -0.19]).below_zero
    one = paired([0.5])
    assert (one.mean, one.low, one.high, one.n) == (0.5, None, None, 1)
    assert not one.above_zero  # nothing is significant on one seed
    assert paired([]).n == 0 and paired([None]).mean is None


def test_float_noise_is_not_significance() -> None:
    # Two bit-different runs of one loss: differences at the 1e-9 level, all of one sign.
    p = paired([1e-9, 2e-9, 3e-9])
    assert (p.mean, p.low, p.high) == (0.0, 0.0, 0.0)
    assert not p.above_zero


def test_rank_key_orders_by_lower_bound_then_one_seed_means() -> None:
    steady, lucky = paired([0.1, 0.1, 0.11]), paired([0.6, -0.1, 0.1])
    assert lucky.mean is not None and steady.mean is not None and lucky.mean > steady.mean
    assert steady.rank_key > lucky.rank_key
    assert paired([-5.0, -5.1]).rank_key > paired([9.0]).rank_key > paired([]).rank_key


def test_spearman_with_known_answers() -> None:
    assert ranks([10, 20, 20, 5]) == [2.0, 3.5, 3.5, 1.0]
    assert spearman([1, 2, 3, 4, 5], [2, 4, 6, 8, 100]).rho == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4, 5], [5, 4, 3, 2, 1]).rho == pytest.approx(-1.0)
    # One swap among five: rho = 1 - 6 * 2 / (5 * 24) = 0.9.
    c = spearman([1, 2, 3, 4, 5], [1, 2, 3, 5, 4])
    assert c.rho == pytest.approx(0.9)
    z, se = math.atanh(0.9), 1.03 / math.sqrt(2)
    assert c.low == pytest.approx(math.tanh(z - 1.96 * se), abs=1e-3)
    assert c.high == pytest.approx(math.tanh(z + 1.96 * se), abs=1e-3)
    assert spearman([1, 2], [2, 1]).rho is None  # too few
    assert spearman([1, 1, 1], [1, 2, 3]).rho is None  # nothing to rank
    with pytest.raises(ValueError, match="paired"):
        spearman([1, 2, 3], [1, 2])


def test_frontier_interpolates_through_the_reference_and_dpo_points() -> None:
    f = Frontier.build(
        [Point(1.0, 2.0, 0.8), Point(0.5, 4.0, 0.7), Point(4.0, 1.0, 0.6)], origin_reward=0.4
    )
    assert f.kls == (0.0, 1.0, 2.0, 4.0)
    assert f(0.0) == 0.4 and f(-0.1) == 0.4  # flat before the first knot
    assert f(0.5) == pytest.approx(0.5)  # halfway between the reference and beta 4
    assert f(1.5) == pytest.approx(0.7)
    assert f(3.0) == pytest.approx(0.75)  # over-optimization: reward falls past KL 2
    assert f(9.0) == 0.7 and f.beyond(9.0) and not f.beyond(3.0)  # flat beyond the grid


def test_a_point_below_zero_kl_is_kept_as_measured() -> None:
    # Near the reference, Monte Carlo KL can come out below 0: DPO at that beta must still score
    # 0, so the point is not moved onto the reference.
    f = Frontier.build([Point(8.0, -0.02, 0.55), Point(1.0, 1.0, 0.8)], origin_reward=0.5)
    assert f.kls == (-0.02, 0.0, 1.0)
    assert f(-0.02) == 0.55 and f(0.0) == 0.5 and f(-1.0) == 0.55
    # Two points at one KL: the better one is the frontier there.
    assert Frontier.build([Point(1, 1.0, 0.6), Point(2, 1.0, 0.7)], origin_reward=None)(1.0) == 0.7


def test_frontier_points_travel_in_metrics() -> None:
    metrics = {"reward/mean": 0.8, **point_metrics(0.5, 3.0, 0.9), **point_metrics(2.0, 1.0, 0.7)}
    metrics["frontier/beta=4.0/kl"] = 0.5  # a point without its reward is no point
    assert points_from_metrics(metrics) == [Point(0.5, 3.0, 0.9), Point(2.0, 1.0, 0.7)]


def dpo_run(kl: float, reward: float, grid: dict[float, tuple[float, float]]) -> dict[str, float]:
    metrics = {"reward/mean": reward, "kl/ref": kl, "reward/ref_mean": 0.5}
    for beta, (k, r) in grid.items():
        metrics |= point_metrics(beta, k, r)
    return metrics


def test_tinylm_scores_against_the_frontier_at_the_candidates_kl() -> None:
    grid = {1.0: (2.0, 0.8), 0.5: (4.0, 0.7), 4.0: (1.0, 0.65)}
    dpo = dpo_run(2.0, 0.8, grid)

    def score(kl: float, reward: float) -> float:
        return versus_dpo("tinylm", "reward/mean", {"reward/mean": reward, "kl/ref": kl}, dpo)

    assert score(2.0, 0.8) == 0.0  # DPO itself
    assert score(4.0, 0.7) == 0.0 and score(1.0, 0.65) == 0.0  # DPO at other betas
    # The old score (reward minus DPO's at beta 1) called a beta change a loss: -0.15 here.
    assert score(1.0, 0.65) != 0.65 - 0.8
    assert score(1.0, 0.75) == pytest.approx(0.10)  # more reward at the same KL
    assert score(3.0, 0.70) == pytest.approx(-0.05)  # more KL for less reward
    # A DPO run without a grid: its own point and the reference make the frontier.
    plain = {"reward/mean": 0.8, "kl/ref": 2.0, "reward/ref_mean": 0.5}
    candidate = {"reward/mean": 0.7, "kl/ref": 1.0, "reward/ref_mean": 0.5}
    assert versus_dpo("tinylm", "reward/mean", candidate, plain) == pytest.approx(0.05)


def test_hf_frontier_spans_the_beta_tasks_of_a_seed() -> None:
    tasks = ["beta=0.1", "beta=0.5"]
    assert frontier_tasks("hf", "beta=0.1", tasks, "reward/mean") == tasks
    assert frontier_tasks("hf", "beta=0.1", tasks, "rewards/accuracies") == ["beta=0.1"]
    assert frontier_tasks("tinylm", "arithmetic", tasks, "reward/mean") == ["arithmetic"]
    low = {"reward/mean": 2.0, "kl/ref": 4.0, "reward/ref_mean": 1.0}
    high = {"reward/mean": 1.5, "kl/ref": 1.0, "reward/ref_mean": 1.0}
    candidate = {"reward/mean": 1.8, "kl/ref": 1.0, "reward/ref_mean": 1.0}
    grid = [low, high]
    assert versus_dpo("hf", "reward/mean", candidate, low, grid=grid) == pytest.approx(0.3)
    # A win rate against the reference is 1/2 at KL 0.
    wins = {"judge/win_rate": 0.6, "kl/ref": 2.0}
    assert versus_dpo("hf", "judge/win_rate", {"judge/win_rate": 0.6, "kl/ref": 1.0}, wins) == (
        pytest.approx(0.05)
    )
    # No generations (accuracy only): the same-beta difference, as before.
    acc = {"rewards/accuracies": 0.7}
    assert versus_dpo("hf", "rewards/accuracies", {"rewards/accuracies": 0.75}, acc) == (
        pytest.approx(0.05)
    )
    assert versus_dpo(
        "bandit", "frontier/area", {"frontier/area": 0.3}, {"frontier/area": 0.1}
    ) == (pytest.approx(0.2))


def test_aggregate_gives_the_interval() -> None:
    s = aggregate([0.1, 0.2, 0.3, None])
    assert (s.seeds, s.score) == (3, pytest.approx(0.2))
    assert s.as_dict()["score_low"] == s.low and s.low is not None and s.high is not None
    assert aggregate([]).score is None
