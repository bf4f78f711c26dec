"""Training curves of the bandit and tinylm stages (`RunResult.curves`): one point per step (every
k-th past 200, the last always kept), null where a value is not finite, per loss in a population,
and no change to what training computes (checked against values from the tree before curves)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from evaluator.bandit.stage import run_bandit, run_bandit_population
from evaluator.losses import Loss
from evaluator.results import MAX_CURVE_POINTS, RunResult, RunStatus, training_curves
from evaluator.stage_configs import BanditConfig, TinyLMConfig
from evaluator.tinylm.stage import run_tinylm, run_tinylm_population
from tests.evaluator.plain_losses import BATCH_STANDARDIZED, DPO

SERIES = ("loss", "rewards/margins", "kl/ref")
BANDIT = BanditConfig(max_steps=30)
# The smallest tinylm that trains: a one-block model, a 20-step reference, 6 steps of 16 pairs.
TINYLM = TinyLMConfig.model_validate(
    {
        "max_steps": 6,
        "num_train_pairs": 128,
        "per_device_train_batch_size": 16,
        "num_eval_pairs": 16,
        "num_eval_prompts": 16,
        "model": {"n_layer": 1, "n_head": 2, "n_embd": 16},
        "sft": {
            "max_steps": 20,
            "num_demonstrations": 256,
            "per_device_train_batch_size": 32,
            "warmup_steps": 2,
        },
    }
)


def nan_once_moved_fn(
    policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps, beta
):
    # DPO plus the log of a quantity that is positive only while the policy is the reference
    # (step 1) and negative from step 2 on: the loss is NaN at step 2 exactly.
    margin = (policy_chosen_logps - ref_chosen_logps) - (policy_rejected_logps - ref_rejected_logps)
    return torch.log(1e-4 - margin.abs().mean()) - F.logsigmoid(beta * margin)


NAN_ONCE_MOVED = Loss("nan_once_moved", nan_once_moved_fn)


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """One torch thread, as a worker runs (bit-for-bit results depend on the thread count)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory, one_thread: None) -> Path:
    """This module's tinylm reference cache (TINYLM's reference is trained once, on first use)."""
    return tmp_path_factory.mktemp("curves-cache")


def assert_well_formed(result: RunResult, steps: list[int]) -> None:
    assert result.curves["step"] == steps
    assert set(result.curves) == {"step", *SERIES}
    assert all(len(result.curves[name]) == len(steps) for name in SERIES)


def test_thinning_keeps_every_kth_step_and_the_last() -> None:
    for n in (1, 199, 200, 201, 399, 400, 401, 1000):
        curves = training_curves(range(1, n + 1), {"loss": [float(s) for s in range(1, n + 1)]})
        every = math.ceil(n / MAX_CURVE_POINTS)
        expected = [s for s in range(1, n + 1) if s % every == 0]
        expected += [] if expected and expected[-1] == n else [n]
        assert curves["step"] == expected, n
        assert curves["loss"] == [float(s) for s in expected]
        assert len(expected) <= MAX_CURVE_POINTS
    odd = training_curves([1, 2, 3], {"loss": [math.nan, math.inf, 1.0]})
    assert odd == {"step": [1, 2, 3], "loss": [None, None, 1.0]}
    assert training_curves([], {"loss": []}) == {}
    with pytest.raises(ValueError, match="curve 'kl/ref' has 1 points for 2 steps"):
        training_curves([1, 2], {"loss": [1.0, 2.0], "kl/ref": [0.0]})


def test_bandit_curves_past_200_steps_are_thinned_and_finite_for_dpo() -> None:
    result = run_bandit(DPO, task="tabular", seed=0, config=BanditConfig(max_steps=201))
    assert result.status is RunStatus.DONE
    assert_well_formed(result, [*range(2, 201, 2), 201])  # every 2nd of 201, and the last
    assert all(math.isfinite(v) for name in SERIES for v in result.curves[name])
    assert result.curves["loss"][-1] == result.losses[-1] == result.metrics["loss/final"]
    assert result.curves["loss"] == [*result.losses[1::2], result.losses[-1]]
    # The last KL point is the policy before the last update; it is on its way to the final KL.
    kl = result.curves["kl/ref"]
    assert 0.0 <= kl[0] < kl[-1] <= result.metrics["kl/ref"] * 1.01
    assert result.curves["rewards/margins"][-1] > result.curves["rewards/margins"][0]


def test_tinylm_curves_cover_every_step_and_are_finite_for_dpo(cache: Path) -> None:
    result = run_tinylm(DPO, task="sorting", seed=0, config=TINYLM, cache_dir=cache)
    assert result.status is RunStatus.DONE, result.reason
    assert_well_formed(result, [1, 2, 3, 4, 5, 6])
    assert result.curves["loss"] == pytest.approx(result.losses)
    assert all(math.isfinite(v) for name in SERIES for v in result.curves[name])
    # Step 1: the policy is the reference, so no margin and no KL yet.
    assert result.curves["rewards/margins"][0] == pytest.approx(0.0, abs=1e-6)
    assert result.curves["kl/ref"][0] == pytest.approx(0.0, abs=1e-6)
    assert result.curves["rewards/margins"][-1] > 0.0


def test_a_nan_loss_is_null_at_its_step_and_the_run_keeps_its_status(cache: Path) -> None:
    bandit = run_bandit(NAN_ONCE_MOVED, task="tabular", seed=0, config=BANDIT)
    tinylm = run_tinylm(NAN_ONCE_MOVED, task="sorting", seed=0, config=TINYLM, cache_dir=cache)
    for result in (bandit, tinylm):
        assert result.status is RunStatus.NAN_LOSS and result.metrics == {}
        assert len(result.losses) == result.steps == 1
        assert_well_formed(result, [1, 2])  # through the step that stopped it
        assert result.curves["loss"][0] == pytest.approx(result.losses[0])
        assert result.curves["loss"][1] is None
        assert all(v is not None for v in result.curves["rewards/margins"])
    assert "step 1 of the main run" in (bandit.reason or "")
    assert "step 2" in (tinylm.reason or "")


def test_bandit_population_records_each_losss_own_curves() -> None:
    results = run_bandit_population(
        [DPO, BATCH_STANDARDIZED, NAN_ONCE_MOVED], task="tabular", seed=0, config=BANDIT
    )
    dpo, standardized, nan = results
    assert dpo.curves["loss"] != standardized.curves["loss"]
    assert dpo.curves["rewards/margins"] != standardized.curves["rewards/margins"]
    for loss, result in zip((DPO, BATCH_STANDARDIZED, NAN_ONCE_MOVED), results, strict=True):
        alone = run_bandit(loss, task="tabular", seed=0, config=BANDIT)
        assert result.status is alone.status
        assert result.curves == alone.curves, loss.name
    assert nan.curves["loss"][1] is None


def test_tinylm_population_records_each_losss_own_curves(cache: Path) -> None:
    losses = [DPO, BATCH_STANDARDIZED, NAN_ONCE_MOVED]
    results = run_tinylm_population(losses, task="sorting", seed=0, config=TINYLM, cache_dir=cache)
    dpo, standardized, nan = results
    assert dpo.curves["loss"] != pytest.approx(standardized.curves["loss"], rel=1e-3)
    for loss, result in zip(losses, results, strict=True):
        alone = run_tinylm(loss, task="sorting", seed=0, config=TINYLM, cache_dir=cache)
        assert result.status is alone.status, loss.name
        assert result.curves["step"] == alone.curves["step"], loss.name
        for name in SERIES:  # the grouped forward matches the lean loop to float32 rounding
            got, want = result.curves[name], alone.curves[name]
            assert [v is None for v in got] == [v is None for v in want], (loss.name, name)
            pairs = [(g, w) for g, w in zip(got, want, strict=True) if w is not None]
            assert [g for g, _ in pairs] == pytest.approx([w for _, w in pairs], abs=1e-5)
    assert nan.status is RunStatus.NAN_LOSS and nan.curves["loss"] == [
        pytest.approx(nan.losses[0]),
        None,
    ]


# What the tree before curves computed, same configs, task and seed 3, one thread (stage runs
# are bit for bit on one CPU); recording must leave every one of these as it was.
BEFORE_BANDIT = {
    "reward/normalized": 0.5446835442713909,
    "kl/ref": 0.7366704733752147,
    "preservation/kl": 0.0,
    "noise/reward_drop": 0.058589800948400717,
    "frontier/area": 0.450279170690262,
    "loss/final": 0.5565485705138007,
}
BEFORE_BANDIT_POPULATION = [0.5446835442713909, 0.5495346928097491]  # reward/normalized
BEFORE_TINYLM_LOSSES = [
    0.6931471824645996,
    0.6849442720413208,
    0.6660736203193665,
    0.6403651833534241,
    0.6201237440109253,
    0.6256702542304993,
]
BEFORE_TINYLM = {
    "rewards/margins": -0.22154353559017181,
    "logps/chosen_drift": -0.0687219500541687,
    "logps/rejected_drift": 0.1528215855360031,
}
BEFORE_TINYLM_POPULATION_LOSSES = [
    [
        0.6931471824645996,
        0.6849442720413208,
        0.6660736203193665,
        0.6403651833534241,
        0.6201236248016357,
        0.6256701946258545,
    ],
    [
        0.3465735912322998,
        0.3431645631790161,
        0.33475160598754883,
        0.32319334149360657,
        0.31270304322242737,
        0.3173730969429016,
    ],
]


def test_recording_changes_no_result(cache: Path) -> None:
    # Tolerances allow for another CPU's rounding only: a changed draw or step moves these by
    # orders of magnitude more.
    bandit = run_bandit(DPO, task="tabular", seed=3, config=BANDIT)
    assert {k: bandit.metrics[k] for k in BEFORE_BANDIT} == pytest.approx(BEFORE_BANDIT, rel=1e-9)
    population = run_bandit_population(
        [DPO, BATCH_STANDARDIZED], task="tabular", seed=3, config=BANDIT
    )
    assert [r.metrics["reward/normalized"] for r in population] == pytest.approx(
        BEFORE_BANDIT_POPULATION, rel=1e-9
    )
    tinylm = run_tinylm(DPO, task="sorting", seed=3, config=TINYLM, cache_dir=cache)
    assert tinylm.losses == pytest.approx(BEFORE_TINYLM_LOSSES, rel=1e-5)
    assert {k: tinylm.metrics[k] for k in BEFORE_TINYLM} == pytest.approx(BEFORE_TINYLM, rel=1e-4)
    grouped = run_tinylm_population(
        [DPO, BATCH_STANDARDIZED], task="sorting", seed=3, config=TINYLM, cache_dir=cache
    )
    for result, before in zip(grouped, BEFORE_TINYLM_POPULATION_LOSSES, strict=True):
        assert result.losses == pytest.approx(before, rel=1e-5)
