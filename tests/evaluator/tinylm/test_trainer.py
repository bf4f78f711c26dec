"""The lean loop: it learns, it is deterministic, and it turns failures into statuses."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable

import pytest
import torch

from evaluator.losses import Loss
from evaluator.results import RunStatus
from evaluator.tinylm.pairs import PairSet
from evaluator.tinylm.reference import Reference
from evaluator.tinylm.trainer import TrainOutcome, reference_logps, train
from tests.evaluator.plain_losses import DPO, NAN_AFTER_MOVING

from .factories import small_pairs


@pytest.fixture(scope="module")
def data(reference: Callable[[str], Reference]) -> tuple[Reference, PairSet]:
    ref = reference("sorting")
    return ref, small_pairs(ref, 64)


def run(
    data: tuple[Reference, PairSet], loss: Loss, *, steps: int = 10, seed: int = 0, **kwargs: object
) -> tuple[TrainOutcome, torch.nn.Module]:
    ref, pairs = data
    policy = copy.deepcopy(ref.model).requires_grad_(True)
    settings = {"beta": 1.0, "learning_rate": 5e-4, "max_grad_norm": 1.0, **kwargs}
    outcome = train(
        policy,
        pairs,
        reference_logps(ref.model, pairs),
        loss,
        per_device_train_batch_size=16,
        max_steps=steps,
        generator=torch.Generator().manual_seed(seed),
        **settings,  # type: ignore[arg-type]
    )
    return outcome, policy


def test_dpo_steps_change_the_policy_and_lower_the_loss(data: tuple[Reference, PairSet]) -> None:
    outcome, policy = run(data, DPO, steps=20)
    assert outcome.status is RunStatus.DONE and outcome.reason is None
    assert outcome.steps == len(outcome.losses) == 20
    assert outcome.losses[0] == pytest.approx(torch.log(torch.tensor(2.0)).item())  # π = π_ref
    assert sum(outcome.losses[-5:]) / 5 < 0.6
    before = dict(data[0].model.named_parameters())
    changed = [n for n, p in policy.named_parameters() if not torch.equal(p, before[n])]
    assert len(changed) > len(before) // 2
    assert not any(p.requires_grad for p in data[0].model.parameters())  # reference untouched


def test_same_seed_same_losses_bit_for_bit(data: tuple[Reference, PairSet]) -> None:
    a, _ = run(data, DPO, seed=3)
    b, _ = run(data, DPO, seed=3)
    c, _ = run(data, DPO, seed=4)
    assert a.losses == b.losses
    assert a.losses != c.losses  # the seed orders the batches


def test_nan_at_the_first_step(data: tuple[Reference, PairSet]) -> None:
    def log_of_logps(
        policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps, beta
    ):
        return torch.log(policy_chosen_logps)  # log-probs are negative: NaN

    outcome, _ = run(data, Loss("log_of_logps", log_of_logps))
    assert outcome.status is RunStatus.NAN_LOSS
    assert "step 1 " in outcome.reason
    assert outcome.steps == 0 and outcome.losses == []


def test_nan_after_the_policy_moves(data: tuple[Reference, PairSet]) -> None:
    outcome, _ = run(data, NAN_AFTER_MOVING, steps=100)
    assert outcome.status is RunStatus.NAN_LOSS
    assert f"step {outcome.steps + 1} " in outcome.reason
    assert outcome.steps >= 1 and len(outcome.losses) == outcome.steps
    assert all(torch.isfinite(torch.tensor(outcome.losses)))


def test_non_finite_gradient_with_a_finite_loss(data: tuple[Reference, PairSet]) -> None:
    def sqrt_at_zero(
        policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps, beta
    ):
        return torch.sqrt(policy_chosen_logps - ref_chosen_logps)  # 0 at π = π_ref, slope ∞

    outcome, _ = run(data, Loss("sqrt_at_zero", sqrt_at_zero))
    assert outcome.status is RunStatus.NAN_LOSS
    assert outcome.reason == "gradient is non-finite at step 1"


def test_wrong_shape_and_no_gradient_are_errors(data: tuple[Reference, PairSet]) -> None:
    def scalar(
        policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps, beta
    ):
        return (policy_chosen_logps - policy_rejected_logps).mean()

    def reference_only(
        policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps, beta
    ):
        return ref_rejected_logps - ref_chosen_logps

    outcome, _ = run(data, Loss("scalar", scalar))
    assert outcome.status is RunStatus.ERROR and "shape ()" in outcome.reason
    outcome, _ = run(data, Loss("reference_only", reference_only))
    assert outcome.status is RunStatus.ERROR and "no gradient path" in outcome.reason


def test_optional_inputs_have_the_contract_shapes(data: tuple[Reference, PairSet]) -> None:
    seen: list[dict[str, torch.Tensor]] = []

    def length_normalized(
        policy_chosen_logps,
        policy_rejected_logps,
        ref_chosen_logps,
        ref_rejected_logps,
        beta,
        chosen_lengths,
        rejected_lengths,
        refs_chosen_logps,
        refs_rejected_logps,
    ):
        seen.append(
            {
                "chosen_lengths": chosen_lengths,
                "rejected_lengths": rejected_lengths,
                "refs_chosen_logps": refs_chosen_logps,
                "beta": beta,
                "refs_rejected_logps": refs_rejected_logps,
                "ref": ref_chosen_logps,
            }
        )
        margin = (policy_chosen_logps - refs_chosen_logps[0]) / chosen_lengths - (
            policy_rejected_logps - refs_rejected_logps[0]
        ) / rejected_lengths
        return (margin - 1 / (2 * beta)) ** 2  # IPO on length-averaged log-ratios

    loss = Loss(
        "ipo_like",
        length_normalized,
        frozenset(
            {"chosen_lengths", "rejected_lengths", "refs_chosen_logps", "refs_rejected_logps"}
        ),
    )
    outcome, _ = run(data, loss, steps=3)
    assert outcome.status is RunStatus.DONE
    first = seen[0]
    assert first["chosen_lengths"].shape == (16,) and first["chosen_lengths"].dtype == torch.int64
    assert (first["chosen_lengths"] >= 2).all()  # sorting: 4 digits + eos
    assert first["refs_chosen_logps"].shape == (1, 16)
    assert torch.equal(first["refs_chosen_logps"][0], first["ref"])
    assert first["beta"].shape == () and first["beta"].item() == 1.0


def test_deadline_stops_with_timeout(data: tuple[Reference, PairSet]) -> None:
    outcome, _ = run(data, DPO, deadline=time.monotonic() - 1.0)
    assert outcome.status is RunStatus.TIMEOUT and outcome.steps == 0
    assert "before step 1" in outcome.reason
