"""run_tinylm end to end: DPO beats the reference on every task; failures are statuses."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from evaluator.losses import Loss
from evaluator.results import RunResult, RunStatus
from evaluator.tinylm.stage import TASKS, TinyLMConfig, run_tinylm
from tests.evaluator.configs import with_fields
from tests.evaluator.plain_losses import DPO, NAN_AFTER_MOVING

SEEDS = (0, 1, 2)
METRICS = {
    "reward/mean",
    "reward/ref_mean",
    "kl/ref",
    "rewards/accuracies",
    "rewards/margins",
    "logps/chosen_drift",
    "logps/rejected_drift",
}


@pytest.fixture(scope="module")
def dpo_run(tinylm_config: TinyLMConfig, tinylm_cache: Path) -> Callable[[str, int], RunResult]:
    """dpo_run(task, seed) -> the DPO run with the default config, computed once."""
    done: dict[tuple[str, int], RunResult] = {}

    def get(task: str, seed: int) -> RunResult:
        if (task, seed) not in done:
            done[task, seed] = run_tinylm(
                DPO, task=task, seed=seed, config=tinylm_config, cache_dir=tinylm_cache
            )
        return done[task, seed]

    return get


@pytest.mark.parametrize("task", sorted(TASKS))
def test_dpo_beats_the_reference_over_three_seeds(
    dpo_run: Callable[[str, int], RunResult], task: str
) -> None:
    runs = [dpo_run(task, seed) for seed in SEEDS]
    for run in runs:
        assert run.status is RunStatus.DONE, run.reason
        assert set(run.metrics) == METRICS
        assert run.steps == len(run.losses) == 128
        assert run.metrics["rewards/accuracies"] > 0.6
        assert 0.0 < run.metrics["kl/ref"] < 40.0
    gains = [r.metrics["reward/mean"] - r.metrics["reward/ref_mean"] for r in runs]
    assert sum(gains) / len(gains) > 0.02, gains
    assert min(gains) > 0.0, gains


def test_same_seed_same_result_bit_for_bit(
    dpo_run: Callable[[str, int], RunResult], tinylm_config: TinyLMConfig, tinylm_cache: Path
) -> None:
    again = run_tinylm(DPO, task="sorting", seed=1, config=tinylm_config, cache_dir=tinylm_cache)
    first = dpo_run("sorting", 1)
    assert again.losses == first.losses
    assert again.metrics == first.metrics
    other = dpo_run("sorting", 2)
    assert other.losses != first.losses
    assert other.metrics["reward/ref_mean"] != first.metrics["reward/ref_mean"]  # eval draws


def test_nan_loss_is_a_status_without_metrics(
    tinylm_config: TinyLMConfig, tinylm_cache: Path
) -> None:
    result = run_tinylm(
        NAN_AFTER_MOVING, task="arithmetic", seed=0, config=tinylm_config, cache_dir=tinylm_cache
    )
    assert result.status is RunStatus.NAN_LOSS
    assert f"at step {result.steps + 1} " in result.reason
    assert result.metrics == {}


def test_runaway_kl_is_diverged(tinylm_config: TinyLMConfig, tinylm_cache: Path) -> None:
    config = with_fields(tinylm_config, max_steps=20, max_kl=0.05)
    result = run_tinylm(DPO, task="sentiment", seed=0, config=config, cache_dir=tinylm_cache)
    assert result.status is RunStatus.DIVERGED
    assert "above max_kl=0.05" in result.reason
    assert result.metrics == {} and result.steps == 20


def test_errors_and_timeouts_are_statuses(tinylm_config: TinyLMConfig, tinylm_cache: Path) -> None:
    result = run_tinylm(
        DPO, task="translation", seed=0, config=tinylm_config, cache_dir=tinylm_cache
    )
    assert result.status is RunStatus.ERROR and "choose one of" in result.reason

    def broken(
        policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps, beta
    ):
        raise ZeroDivisionError("boom")

    result = run_tinylm(
        Loss("broken", broken),
        task="arithmetic",
        seed=0,
        config=tinylm_config,
        cache_dir=tinylm_cache,
    )
    assert result.status is RunStatus.ERROR and result.reason == "ZeroDivisionError: boom"

    result = run_tinylm(
        DPO,
        task="arithmetic",
        seed=0,
        config=with_fields(tinylm_config, max_seconds=0.0),
        cache_dir=tinylm_cache,
    )
    assert result.status is RunStatus.TIMEOUT and result.steps == 0


def test_config_is_validated(tinylm_config: TinyLMConfig) -> None:
    with pytest.raises(ValueError, match="label_noise"):
        with_fields(tinylm_config, label_noise=0.5)
    with pytest.raises(ValueError, match="per_device_train_batch_size"):
        with_fields(tinylm_config, num_train_pairs=8)
    with pytest.raises(ValueError, match="n_positions"):
        with_fields(tinylm_config, max_length=64)
