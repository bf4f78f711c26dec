"""The wide battery (coverage.py), the cost bound and behavioural duplicates, in-process.

Each exploit is a loss that passes the fixed probes of battery.py but misbehaves where training
happens; each has an honest counterpart that stays accepted. Everything here runs our own trusted
sources in the test process (the end-to-end runs through hardened workers are at the bottom).
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from evaluator.baselines import BASELINES
from sandbox import Candidate, RejectionCode, RejectionError, Sandbox, battery, coverage
from sandbox.config import GraphLimits
from sandbox.fingerprint import NEAR_DUPLICATE, behaviour, distance
from sandbox.graph_meta import check_cost
from tests.sandbox.helpers import define, rebuild
from tests.sandbox.sources import DELTA, DPO, loss_source

C = RejectionCode
pytestmark = pytest.mark.filterwarnings("ignore:.*degrees of freedom:UserWarning")

Z = f"z = beta * {DELTA}"
ANTI = "-F.logsigmoid(-z)"  # rewards the rejected answer
LENGTHS = "chosen_lengths, rejected_lengths"
REFS = "refs_chosen_logps, refs_rejected_logps"


def _params(*extra: str) -> str:
    base = "policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps, beta"
    return ", ".join([base, *extra])


def _run(source: str, seed: int = 7) -> battery.BatteryLimits:
    fn, names = define(source)
    return battery.run_battery(fn, names, seed=seed)


def _rejected(source: str, code: RejectionCode, words: str) -> str:
    with pytest.raises(RejectionError) as info:
        _run(source)
    assert info.value.code is code, info.value.reason
    assert words in info.value.reason, info.value.reason
    return info.value.reason


# Honest losses the wide checks must keep accepting, besides every baseline (test_battery.py).
SIMPO = loss_source(  # reference-free, length-normalized margin minus a target margin (SimPO)
    "margin = policy_chosen_logps / chosen_lengths - policy_rejected_logps / rejected_lengths",
    "return -F.logsigmoid(2.0 * margin - 0.5)",
    params=_params(LENGTHS),
)
IPO_LENGTH_NORMALIZED = loss_source(
    "s_c = (policy_chosen_logps - ref_chosen_logps) / chosen_lengths",
    "s_r = (policy_rejected_logps - ref_rejected_logps) / rejected_lengths",
    "return (s_c - s_r - 1 / (2 * beta)) ** 2",
    params=_params(LENGTHS),
)
CDPO = loss_source(Z, "return -0.9 * F.logsigmoid(z) - 0.1 * F.logsigmoid(-z)")
QUANTILE = loss_source(  # the margin relative to the batch's lower quartile, weighted
    Z,
    "q = torch.quantile(z, 0.25)",
    "return -F.logsigmoid(z) * (1 + torch.sigmoid(q - z))",
)
MULTI_REF_MEAN = loss_source(
    "margins = beta * ((policy_chosen_logps - refs_chosen_logps) - "
    "(policy_rejected_logps - refs_rejected_logps))",
    "return -F.logsigmoid(margins).mean(dim=0)",
    params=_params(REFS),
)
HONEST = {
    "simpo": SIMPO,
    "ipo_length_normalized": IPO_LENGTH_NORMALIZED,
    "cdpo": CDPO,
    "quantile": QUANTILE,
    "multi_ref_mean": MULTI_REF_MEAN,
}


@pytest.mark.parametrize("name", sorted(HONEST))
def test_honest_losses_pass_every_wide_check(name: str) -> None:
    for seed in (1, 2, 3):  # the parent draws a fresh seed each time: any must do
        _run(HONEST[name], seed)


def test_the_ladder_spans_where_training_happens() -> None:
    settings = coverage.LADDER + coverage.drawn_settings(5)
    assert {1, 32, 1152, 2048} <= {s.batch for s in settings}
    assert min(s.beta for s in settings) <= 0.001 and max(s.beta for s in settings) >= 10
    assert {s.dtype for s in settings} == {torch.float32, torch.float64}
    assert {s.refs for s in coverage.LADDER} >= {1, 8}
    batch, pairs = coverage.setting_batch(coverage.Setting(2048, 0.05, torch.float32, 4, 4096), 3)
    assert pairs > 100 and batch["policy_chosen_logps"].shape == (2048,)
    assert batch["chosen_lengths"].min() == 1 and batch["chosen_lengths"].max() > 2048
    assert batch["ref_chosen_logps"].min() >= -2000 and batch["ref_chosen_logps"].max() > -1
    assert (batch["policy_chosen_logps"] < 0).all()
    # the first P examples favour the chosen side by every measure, the next P are their swaps
    favoured = {k: v[..., :pairs] for k, v in batch.items() if k != "beta"}
    swapped = {k: v[..., pairs : 2 * pairs] for k, v in batch.items() if k != "beta"}
    assert (coverage.favours_chosen(favoured) == 1).all()
    assert (coverage.favours_chosen(swapped) == -1).all()


def test_detached_values_over_a_reversed_gradient_are_rejected() -> None:
    reason = _rejected(
        loss_source(
            Z,
            "shown = -F.logsigmoid(z)",
            f"trained = {ANTI}",
            "return shown.detach() + (trained - trained.detach())",
        ),
        C.GRADIENT_MISMATCH,
        "no detach or straight-through tricks",
    )
    assert "finite differences" in reason


def test_a_straight_through_step_is_rejected_but_a_smooth_one_is_not() -> None:
    # values of a step function, gradients of a sigmoid: the classic straight-through estimator
    _rejected(
        loss_source(
            Z,
            "soft = torch.sigmoid(-z)",
            "hard = (z < 0).to(z.dtype)",
            "return soft + (hard - soft).detach()",
        ),
        C.GRADIENT_MISMATCH,
        "gradient does not match",
    )
    _run(loss_source(Z, "return torch.sigmoid(-z)"))


@pytest.mark.parametrize(
    ("switch", "params", "where"),
    [
        ("torch.ones_like(z) * z.shape[0] >= 25", _params(), "batch size"),
        ("torch.abs(beta - 0.3) < 0.05", _params(), "beta=0.3"),
        ("torch.abs(beta - 3.0) < 0.5", _params(), "beta=3"),
        ("torch.ones_like(z) * refs_chosen_logps.shape[0] != 3", _params(REFS), "references"),
        ("ref_chosen_logps.mean() > -20", _params(), "lengths"),
    ],
)
def test_a_margin_that_flips_where_the_fixed_probes_never_look_is_rejected(
    switch: str, params: str, where: str
) -> None:
    source = loss_source(
        Z, f"return torch.where({switch}, {ANTI}, -F.logsigmoid(z))", params=params
    )
    reason = _rejected(source, C.REWARDS_REJECTED, "swapping a pair's sides")
    assert where in reason


def test_a_margin_that_flips_in_float64_is_rejected() -> None:
    _rejected(
        loss_source(
            Z,
            "flip = torch.finfo(z.dtype).eps < 1e-10",  # float64 only
            f"return {ANTI} if flip else -F.logsigmoid(z)",
        ),
        C.INCONSISTENT,
        "in float32 but",
    )


@pytest.mark.parametrize("outside", ["chosen_lengths < 8", "rejected_lengths > 512"])
def test_nan_gradients_behind_finite_values_at_unprobed_lengths_are_rejected(outside: str) -> None:
    _rejected(
        loss_source(
            Z,
            # sqrt at 0 (infinite slope) only outside 8..512 tokens: 0 * inf = NaN in the gradient
            f"inner = torch.where({outside}, z - z, z * 0 + 1)",
            "return -F.logsigmoid(z) + 0 * torch.sqrt(inner)",
            params=_params(LENGTHS),
        ),
        C.NON_FINITE_GRAD,
        "lengths 1..",
    )


def test_position_dependence_that_grows_with_the_batch_is_rejected() -> None:
    reason = _rejected(
        loss_source(
            Z,
            "position = torch.cumsum(torch.ones_like(z), 0) - 1  # 0, 1, ..., B-1",
            "weight = 1 + 1e-9 * z.shape[0] ** 3 * position",
            "return -F.logsigmoid(z) * weight",
        ),
        C.NOT_PERMUTATION_EQUIVARIANT,
        "reordered",
    )
    assert "float64" in reason


def test_values_that_depend_on_the_batch_size_without_batch_statistics_are_rejected() -> None:
    _rejected(
        loss_source(Z, "return -F.logsigmoid(z) * (1 + 0.01 * (z.shape[0] == 33))"),
        C.INCONSISTENT,
        "batch size 33",
    )


def test_a_loss_that_computes_another_function_in_float64_is_rejected() -> None:
    _rejected(
        loss_source(
            Z,
            "wide = torch.finfo(z.dtype).eps < 1e-10",
            "return -F.logsigmoid(z) * (1.5 if wide else 1.0)",
        ),
        C.INCONSISTENT,
        "float32",
    )


# -- the cost bound (on rebuilt graphs, in the parent) ----------------------------------------


def _cost_rejection(*body: str) -> RejectionError:
    graph = rebuild(loss_source(Z, *body))
    with pytest.raises(RejectionError) as info:
        check_cost(graph.graph_module, graph.input_names, GraphLimits())
    assert info.value.code is C.TOO_COSTLY, info.value.reason
    return info.value


def test_a_pairwise_loss_is_refused_with_its_growth() -> None:
    reason = _cost_rejection(
        "pairwise = torch.sigmoid(z.unsqueeze(0) - z.unsqueeze(1))  # (B, B)",
        "return -F.logsigmoid(z) + pairwise.mean(dim=1)",
    ).reason
    assert "B=256" in reason and "B=4096" in reason


def test_a_loss_far_costlier_than_dpo_is_refused() -> None:
    reason = _cost_rejection(
        "wide = z.unsqueeze(0).expand(2000, -1).exp()",
        "return -F.logsigmoid(z) + 0 * wide.mean(0)",
    ).reason
    assert "times DPO's" in reason


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_every_baseline_is_within_the_cost_bound(name: str) -> None:
    graph = rebuild(BASELINES[name].source)
    check_cost(graph.graph_module, graph.input_names, GraphLimits())


# -- duplicates by behaviour ------------------------------------------------------------------


def _behaviour(source: str, seed: int | None = None) -> torch.Tensor:
    return behaviour(rebuild(source)) if seed is None else behaviour(rebuild(source), seed)


def test_rescaled_and_shifted_losses_behave_alike() -> None:
    dpo = _behaviour(DPO)
    for variant in (
        loss_source(Z, "return -F.logsigmoid(z) * (1 + 3e-6)"),
        loss_source(Z, "return -3.0 * F.logsigmoid(z) + 7.0"),
        loss_source(Z, "return -F.logsigmoid(z) / beta"),  # a per-run constant: Adam cannot tell
    ):
        assert distance(dpo, _behaviour(variant)) <= NEAR_DUPLICATE


def test_different_losses_are_far_apart() -> None:
    dpo = _behaviour(DPO)
    for name in ("ipo", "robust", "hinge", "aqfl", "mrpo"):
        assert distance(dpo, _behaviour(BASELINES[name].source)) > 10 * NEAR_DUPLICATE
    assert distance(dpo, _behaviour(CDPO)) > 10 * NEAR_DUPLICATE


# A loss equal to cDPO at the batch sizes of the fixed behaviour settings, and to DPO elsewhere.
IMPOSTOR = loss_source(
    Z,
    "b = torch.ones_like(z) * z.shape[0]",
    "probed = (b == 8) | (b == 32) | (b == 64) | (b == 256) | (b == 1152)",
    "cdpo = -0.9 * F.logsigmoid(z) - 0.1 * F.logsigmoid(-z)",
    # a whiff of a batch statistic, so values may legitimately change with the batch size
    "return torch.where(probed, cdpo, -F.logsigmoid(z)) + 1e-6 * torch.tanh(z.mean())",
)


def test_an_impostor_matches_only_on_the_fixed_settings() -> None:
    assert distance(_behaviour(IMPOSTOR), _behaviour(CDPO)) <= NEAR_DUPLICATE
    fresh = 12345  # drawn batch sizes are not among the fixed ones
    sizes = {max(s.batch, 4) for s in coverage.drawn_settings(fresh)}
    assert not sizes & {8, 32, 64, 256, 1152}
    assert distance(_behaviour(IMPOSTOR, fresh), _behaviour(CDPO, fresh)) > 10 * NEAR_DUPLICATE
    assert distance(_behaviour(CDPO, fresh), _behaviour(CDPO, fresh)) == 0


# -- through the whole sandbox, hardened workers included --------------------------------------


def test_honest_simpo_and_a_detach_trick_through_the_sandbox(sandbox: Sandbox) -> None:
    assert sandbox.validate(Candidate("simpo", "", SIMPO)).accepted
    verdict = sandbox.validate(
        Candidate(
            "hidden",
            "",
            loss_source(
                Z,
                "trained = -F.logsigmoid(-z)",
                "return -F.logsigmoid(z).detach() + (trained - trained.detach())",
            ),
        )
    )
    assert verdict.code is C.GRADIENT_MISMATCH, verdict.summary()


def test_same_behaviour_confirms_on_fresh_settings(sandbox: Sandbox) -> None:
    graphs = {
        name: sandbox.validate(Candidate(name, "", source)).graph_json
        for name, source in (
            ("cdpo", CDPO),
            ("impostor", IMPOSTOR),
            ("scaled", loss_source(Z, "return -2 * F.logsigmoid(z)")),
            ("dpo", DPO),
        )
    }
    assert all(graphs.values())
    fixed = dataclasses.replace(sandbox.config, probe_seed=12344)  # fresh seed 12345, as above
    box = Sandbox(fixed, pool=sandbox.pool)
    assert box.same_behaviour(graphs["scaled"], graphs["dpo"])
    assert not box.same_behaviour(graphs["impostor"], graphs["cdpo"])
    assert not box.same_behaviour(graphs["cdpo"], graphs["dpo"])
