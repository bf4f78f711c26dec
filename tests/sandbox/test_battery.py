"""Layer 3 (battery.py), run in-process on trusted test losses."""

from __future__ import annotations

import pytest

from evaluator.baselines import BASELINES
from sandbox import RejectionCode, RejectionError, Stage, battery
from tests.sandbox.helpers import define
from tests.sandbox.sources import (
    DELTA,
    DISCOPOP,
    DPO,
    IGNORES_POLICY,
    PFL_WITHOUT_BETA,
    POSITION_DEPENDENT,
    REWARDS_REJECTED,
    loss_source,
)

C = RejectionCode


# Batch statistics at batch size 1 warn (a std over one example); expected here.
pytestmark = pytest.mark.filterwarnings("ignore:.*degrees of freedom:UserWarning")


def _run(source: str) -> battery.BatteryLimits:
    fn, names = define(source)
    return battery.run_battery(fn, names)


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_every_baseline_passes(name: str) -> None:
    _run(BASELINES[name].source)


def test_limits_are_recorded_not_rejected() -> None:
    dpo = _run(DPO)
    assert (dpo.min_batch_size, dpo.overflow_margin, dpo.uses_beta, dpo.batch_dependent) == (
        1,
        None,
        True,
        False,
    )
    aqfl = _run(BASELINES["aqfl"].source)  # a std over one example is NaN
    assert aqfl.min_batch_size == 2 and aqfl.batch_dependent
    lrml = _run(BASELINES["lrml"].source)  # exp(-z) overflows at extreme negative margins
    assert lrml.overflow_margin is not None and lrml.overflow_margin <= 128
    assert not _run(PFL_WITHOUT_BETA).uses_beta


def test_discopop_losses_are_all_in_the_registry() -> None:
    assert set(DISCOPOP) <= set(BASELINES)


REJECTED = [
    (POSITION_DEPENDENT, C.NOT_PERMUTATION_EQUIVARIANT, "position"),
    (IGNORES_POLICY, C.NO_POLICY_GRADIENT, "does not depend on the policy"),
    (REWARDS_REJECTED, C.REWARDS_REJECTED, "rejected answer is preferred"),
    (loss_source(f"return (-F.logsigmoid(beta * {DELTA})).mean()"), C.BAD_SHAPE, "not their mean"),
    (loss_source(f"return torch.stack([{DELTA}, {DELTA}])"), C.BAD_SHAPE, "(2, 1)"),
    (loss_source("return 0.5"), C.NOT_A_TENSOR, "returns float"),
    (loss_source(f"return ({DELTA} > 0).long()"), C.BAD_DTYPE, "int64"),
    (loss_source(f"return torch.exp(-10 * beta * {DELTA})"), C.NON_FINITE, "inf"),
    (
        loss_source(f"z = beta * {DELTA}", "return -F.logsigmoid(z) + torch.sqrt(z - z)"),
        C.NON_FINITE_GRAD,
        "policy_chosen_logps",
    ),
    (
        loss_source(
            f"z = beta * {DELTA}",
            "return -F.logsigmoid(z) * torch.sqrt(torch.ones_like(z) * (z.shape[0] - 4.5))",
        ),
        C.BATCH_TOO_SMALL,
        "batches of 4",
    ),
    (
        loss_source("policy_chosen_logps.add_(1)", f"return -F.logsigmoid(beta * {DELTA})"),
        C.INPLACE_INPUT,
        "policy_chosen_logps in place",
    ),
    (
        loss_source("beta.mul_(2)", f"return -F.logsigmoid(beta * {DELTA})"),
        C.INPLACE_INPUT,
        "beta in place",
    ),
    (loss_source("return policy_chosen_logps.view(3, 7).sum(0)"), C.EXCEPTION, "RuntimeError"),
]


@pytest.mark.parametrize(("source", "code", "fragment"), REJECTED)
def test_faults_have_specific_reasons(source: str, code: RejectionCode, fragment: str) -> None:
    with pytest.raises(RejectionError) as info:
        _run(source)
    assert (info.value.stage, info.value.code) == (Stage.BATTERY, code), info.value.reason
    assert fragment in info.value.reason


def test_exception_classification() -> None:
    assert battery.classify_exception(MemoryError(), "x").code is C.MEMORY
    assert (
        battery.classify_exception(
            RuntimeError("DefaultCPUAllocator: can't allocate memory"), "x"
        ).stage
        is Stage.ISOLATION
    )
    assert battery.classify_exception(PermissionError(1, "nope"), "x").code is (
        C.FORBIDDEN_OPERATION
    )
    assert battery.classify_exception(ImportError("no"), "x").code is C.FORBIDDEN_OPERATION
    assert battery.classify_exception(ValueError("bad"), "ctx").code is C.EXCEPTION
