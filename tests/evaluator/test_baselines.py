"""Behaviour of every registry baseline: contract shape, purity, finiteness, margin response."""

from __future__ import annotations

import ast
import math
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
from torch.func import vmap

from evaluator.baselines import BASELINES, Baseline
from tests.evaluator.conftest import (
    CORE_PARAMETERS,
    OPTIONAL_PARAMETERS,
    LossFn,
    PreferenceBatch,
    call_loss,
    make_batch,
)

EXPECTED = {
    "dpo", "hinge", "ipo", "robust", "nca_pair", "bco_pair", "sppo_hard", "apo_zero", "apo_down",
    "exo_pair", "lrml", "padll", "cell", "pfl", "aqfl", "dbaql", "aql", "mrpo",
}  # fmt: skip
BETAS = (0.01, 0.1, 0.5, 2.0)
NAMES = sorted(BASELINES)


def _margin(batch: PreferenceBatch) -> torch.Tensor:
    return (batch.policy_chosen_logps - batch.ref_chosen_logps) - (
        batch.policy_rejected_logps - batch.ref_rejected_logps
    )


# --- registry and source shape --------------------------------------------------------------


def test_registry_holds_every_design_baseline() -> None:
    assert set(BASELINES) == EXPECTED
    for name, baseline in BASELINES.items():
        assert baseline.name == name
        assert "arXiv" in baseline.cite
        assert baseline.formula
        assert baseline.min_batch_size >= 1


def test_trl_loss_type_mapping() -> None:
    """Which baselines TRL 1.16 also implements (the parity tests run each through TRL)."""
    mapped = {b.name: b.trl_loss_type for b in BASELINES.values() if b.trl_loss_type}
    assert mapped == {
        "dpo": "sigmoid", "hinge": "hinge", "ipo": "ipo", "robust": "robust",
        "nca_pair": "nca_pair", "bco_pair": "bco_pair", "sppo_hard": "sppo_hard",
        "apo_zero": "apo_zero", "apo_down": "apo_down", "exo_pair": "exo_pair", "lrml": "discopop",
    }  # fmt: skip


def test_baseline_refuses_a_source_that_is_not_one_loss_function() -> None:
    with pytest.raises(ValueError, match="exactly one function"):
        Baseline(
            name="bad",
            source="import os\ndef loss(a, b, c, d, beta):\n    return a\n",
            cite="arXiv 0000.00000",
            trl_loss_type=None,
            formula="-",
        )


def test_baseline_is_frozen() -> None:
    with pytest.raises(AttributeError):
        BASELINES["dpo"].name = "other"  # type: ignore[misc]


@pytest.mark.parametrize("name", NAMES)
def test_source_is_one_contract_function(name: str) -> None:
    baseline = BASELINES[name]
    (func,) = ast.parse(baseline.source).body
    assert isinstance(func, ast.FunctionDef)
    assert func.name == "loss"
    assert baseline.parameters[:5] == CORE_PARAMETERS
    assert set(baseline.parameters[5:]) <= OPTIONAL_PARAMETERS
    assert not (func.args.vararg or func.args.kwarg or func.args.kwonlyargs or func.args.defaults)


@pytest.mark.parametrize("name", NAMES)
def test_source_is_pure_and_graph_capturable(name: str) -> None:
    baseline = BASELINES[name]
    tree = ast.parse(baseline.source)
    forbidden = (
        ast.Import, ast.ImportFrom, ast.If, ast.IfExp, ast.While, ast.For, ast.Try, ast.With,
        ast.AugAssign, ast.Lambda, ast.Global, ast.Nonlocal, ast.ClassDef, ast.Assert,
    )  # fmt: skip
    assigned = {
        t.id for node in ast.walk(tree) if isinstance(node, ast.Assign) for t in node.targets
    }
    allowed_names = set(baseline.parameters) | assigned | {"torch", "F", "math"}
    for node in ast.walk(tree):
        assert not isinstance(node, forbidden), f"{name}: {type(node).__name__} in source"
        if isinstance(node, ast.Attribute):
            assert node.attr not in {"item", "tolist", "numpy"}, f"{name}: reads a value"
            assert not node.attr.endswith("_"), f"{name}: in-place {node.attr}"
            assert not isinstance(node.ctx, ast.Store), f"{name}: attribute assignment"
        if isinstance(node, ast.Subscript):
            assert isinstance(node.ctx, ast.Load), f"{name}: subscript assignment"
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
            assert node.id in allowed_names, f"{name}: unknown name {node.id}"


# --- contract behaviour on realistic inputs --------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_shape_values_and_gradients(name: str, compiled_baselines: dict[str, LossFn]) -> None:
    baseline, fn = BASELINES[name], compiled_baselines[name]
    moved = False  # saturating losses (hinge) may have zero gradient on a whole small batch
    for batch_size in sorted({baseline.min_batch_size, 3, 8}):
        for seed, beta in enumerate(BETAS):
            batch = make_batch(batch_size, seed=seed)
            chosen = batch.policy_chosen_logps.clone().requires_grad_()
            rejected = batch.policy_rejected_logps.clone().requires_grad_()
            losses = call_loss(fn, baseline.parameters, batch.with_policy(chosen, rejected), beta)
            assert losses.shape == (batch_size,)
            assert losses.dtype == torch.float64
            assert torch.isfinite(losses).all(), f"{name}: {losses}"
            grad_chosen, grad_rejected = torch.autograd.grad(losses.sum(), [chosen, rejected])
            assert torch.isfinite(grad_chosen).all() and torch.isfinite(grad_rejected).all()
            moved |= bool((grad_chosen != 0).any() or (grad_rejected != 0).any())
    assert moved, f"{name}: zero gradient everywhere"


@pytest.mark.parametrize("name", NAMES)
def test_beta_as_float_or_zero_dim_tensor(name: str, compiled_baselines: dict[str, LossFn]) -> None:
    baseline, fn = BASELINES[name], compiled_baselines[name]
    batch = make_batch(8, seed=11)
    for beta in BETAS:
        as_float = call_loss(fn, baseline.parameters, batch, beta)
        as_tensor = call_loss(
            fn, baseline.parameters, batch, torch.tensor(beta, dtype=torch.float64)
        )
        torch.testing.assert_close(as_tensor, as_float, rtol=1e-12, atol=1e-12)
        # A float32 0-dim beta (as a graph constant might be) must not change the dtype.
        as_f32 = call_loss(fn, baseline.parameters, batch, torch.tensor(beta))
        assert as_f32.dtype == torch.float64
        torch.testing.assert_close(as_f32, as_float, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_traces_to_a_graph_with_tensor_beta(
    name: str, compiled_baselines: dict[str, LossFn]
) -> None:
    """torch.fx traces every input, beta included, as a proxy: any data-dependent Python branch
    or value read would fail here. The traced graph computes the same losses."""
    baseline, fn = BASELINES[name], compiled_baselines[name]
    graph = torch.fx.symbolic_trace(fn)
    batch = make_batch(8, seed=12)
    beta = torch.tensor(0.1, dtype=torch.float64)
    torch.testing.assert_close(
        graph(beta=beta, **batch.kwargs(baseline.parameters)),
        call_loss(fn, baseline.parameters, batch, beta),
        rtol=0,
        atol=0,
    )


@pytest.mark.parametrize("name", NAMES)
def test_float32_inputs(name: str, compiled_baselines: dict[str, LossFn]) -> None:
    baseline, fn = BASELINES[name], compiled_baselines[name]
    batch = make_batch(8, seed=5, dtype=torch.float32)
    losses = call_loss(fn, baseline.parameters, batch, 0.1)
    assert losses.dtype == torch.float32
    assert torch.isfinite(losses).all()


@pytest.mark.parametrize("name", NAMES)
def test_pure_deterministic_and_permutation_equivariant(
    name: str, compiled_baselines: dict[str, LossFn]
) -> None:
    baseline, fn = BASELINES[name], compiled_baselines[name]
    batch = make_batch(8, seed=3)
    kwargs = batch.kwargs(baseline.parameters)
    before = {key: value.clone() for key, value in kwargs.items()}
    first = fn(beta=0.1, **kwargs)
    second = fn(beta=0.1, **kwargs)
    for key, value in kwargs.items():
        assert torch.equal(value, before[key]), f"{name} changed its input {key}"
    assert torch.equal(first, second)
    order = torch.randperm(8, generator=torch.Generator().manual_seed(0))
    permuted = {
        key: value[:, order] if key.startswith("refs_") else value[order]
        for key, value in kwargs.items()
    }
    torch.testing.assert_close(fn(beta=0.1, **permuted), first[order], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", [b.name for b in BASELINES.values() if b.min_batch_size > 1])
def test_batch_statistic_losses_need_min_batch_size(
    name: str, compiled_baselines: dict[str, LossFn]
) -> None:
    """A std/var over one example is NaN: min_batch_size records that limit, it is not stale."""
    baseline = BASELINES[name]
    with pytest.warns(UserWarning, match="degrees of freedom"):
        losses = call_loss(
            compiled_baselines[name], baseline.parameters, make_batch(1, seed=0), 0.1
        )
    assert torch.isnan(losses).all()


# --- response to the margin ------------------------------------------------------------------

PROBE_BETAS = (0.05, 0.1, 0.5, 1.0)
PROBE_Z = torch.linspace(-8.0, 8.0, 1601, dtype=torch.float64)  # βΔ of the probed example


def _probe_batch(batch_size: int, seed: int) -> PreferenceBatch:
    """A realistic batch whose example 0 sits at reference log-probs (-400, -340): its policy
    log-probs stay in -1000..0 over the whole probe, and pc crosses pr at βΔ = 60β. Its short
    completions (4 and 6 tokens) let IPO's length-averaged margin reach its minimum."""
    batch = make_batch(batch_size, seed=seed)
    ref = torch.tensor([-400.0, -340.0], dtype=torch.float64)

    def pin(values: torch.Tensor, value: float) -> torch.Tensor:
        return torch.cat([values.new_tensor([value]), values[1:]])

    refs_chosen = batch.refs_chosen_logps.clone()
    refs_rejected = batch.refs_rejected_logps.clone()
    refs_chosen[:, 0] = ref[0] + torch.tensor([0.0, 2.5, -3.0], dtype=torch.float64)
    refs_rejected[:, 0] = ref[1] + torch.tensor([0.0, -1.5, 4.0], dtype=torch.float64)
    return PreferenceBatch(
        policy_chosen_logps=pin(batch.policy_chosen_logps, float(ref[0]) + 1.0),
        policy_rejected_logps=pin(batch.policy_rejected_logps, float(ref[1]) - 0.5),
        ref_chosen_logps=pin(batch.ref_chosen_logps, float(ref[0])),
        ref_rejected_logps=pin(batch.ref_rejected_logps, float(ref[1])),
        chosen_lengths=torch.cat([torch.tensor([4]), batch.chosen_lengths[1:]]),
        rejected_lengths=torch.cat([torch.tensor([6]), batch.rejected_lengths[1:]]),
        refs_chosen_logps=refs_chosen,
        refs_rejected_logps=refs_rejected,
    )


PROBE_BATCHES = (_probe_batch(8, seed=21), _probe_batch(2, seed=22))


def margin_response(
    baseline: Baseline, fn: LossFn, batch: PreferenceBatch, beta: float, via: str
) -> torch.Tensor:
    """Loss of example 0, shape (G,), as its margin is set to PROBE_Z / β by moving its chosen
    log-prob up (via="chosen") or its rejected log-prob down (via="rejected"); the rest of the
    batch is held fixed, so batch statistics move only through example 0."""
    shift = PROBE_Z / beta - _margin(batch)[0]  # (G,)
    first = torch.zeros(batch.size, dtype=torch.float64)
    first[0] = 1.0
    chosen = batch.policy_chosen_logps + (shift[:, None] * first if via == "chosen" else 0.0)
    rejected = batch.policy_rejected_logps - (shift[:, None] * first if via == "rejected" else 0.0)
    chosen, rejected = torch.broadcast_tensors(chosen, rejected)  # (G, B) each

    def one(c: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        return call_loss(fn, baseline.parameters, batch.with_policy(c, r), beta)

    return vmap(one)(chosen, rejected)[:, 0]


def rises(values: torch.Tensor) -> torch.Tensor:
    """Mask (G-1,) of grid steps where the loss goes up by more than rounding."""
    step = values[1:] - values[:-1]
    return step > 1e-9 * (1.0 + values[:-1].abs())


@pytest.mark.parametrize("name", NAMES)
def test_margin_response_matches_the_recorded_monotonicity(
    name: str, compiled_baselines: dict[str, LossFn]
) -> None:
    """Baselines with `non_monotone=None` never rise as the margin rises over the probe; the others
    do somewhere (so the note is not stale). The probe is the sandbox's kind of check."""
    baseline, fn = BASELINES[name], compiled_baselines[name]
    found = []
    for batch in PROBE_BATCHES:
        for beta in PROBE_BETAS:
            for via in ("chosen", "rejected"):
                values = margin_response(baseline, fn, batch, beta, via)
                assert torch.isfinite(values).all(), f"{name}: non-finite at β={beta} via {via}"
                up = rises(values)
                if up.any():
                    z = PROBE_Z[:-1][up]
                    found.append(f"B={batch.size} β={beta} via {via}: βΔ in [{z.min()}, {z.max()}]")
    if baseline.non_monotone is None:
        assert not found, f"{name} rises with the margin: {found}"
    else:
        assert found, f"{name} is recorded as non-monotone but the probe found no rise"


# --- loss-specific checks --------------------------------------------------------------------


def _run(
    name: str, compiled: dict[str, LossFn], batch: PreferenceBatch, beta: float
) -> torch.Tensor:
    return call_loss(compiled[name], BASELINES[name].parameters, batch, beta)


def test_dpo_is_log_two_at_zero_margin(compiled_baselines: dict[str, LossFn]) -> None:
    batch = make_batch(8, seed=0)
    batch = batch.with_policy(batch.ref_chosen_logps, batch.ref_rejected_logps)
    torch.testing.assert_close(
        _run("dpo", compiled_baselines, batch, 0.1),
        torch.full((8,), math.log(2), dtype=torch.float64),
    )


def test_ipo_averages_log_ratios_over_completion_tokens(
    compiled_baselines: dict[str, LossFn],
) -> None:
    batch = make_batch(8, seed=1)
    chosen = (batch.policy_chosen_logps - batch.ref_chosen_logps) / batch.chosen_lengths
    rejected = (batch.policy_rejected_logps - batch.ref_rejected_logps) / batch.rejected_lengths
    expected = (chosen - rejected - 1 / (2 * 0.1)) ** 2
    torch.testing.assert_close(_run("ipo", compiled_baselines, batch, 0.1), expected)


def test_exo_pair_is_a_kl_with_its_minimum_at_the_target(
    compiled_baselines: dict[str, LossFn],
) -> None:
    batch = make_batch(1, seed=2)
    beta, smoothing = 0.5, 1e-3
    target = math.log((1 - smoothing) / smoothing) / beta  # Δ where σ(βΔ) = 1 - ε
    shifted = batch.with_policy(
        batch.policy_chosen_logps + (target - _margin(batch)), batch.policy_rejected_logps
    )
    torch.testing.assert_close(
        _run("exo_pair", compiled_baselines, shifted, beta),
        torch.zeros(1, dtype=torch.float64),
        atol=1e-9,
        rtol=0,
    )
    assert (_run("exo_pair", compiled_baselines, batch, beta) > 0).all()


def test_padll_halves_the_weight_on_mismatched_pairs(compiled_baselines: dict[str, LossFn]) -> None:
    batch = make_batch(64, seed=4)
    dpo = _run("dpo", compiled_baselines, batch, 0.1)
    expected = torch.where(_margin(batch) < 0, 0.45 * dpo, 0.9 * dpo)
    assert (_margin(batch) < 0).any() and (_margin(batch) > 0).any()
    torch.testing.assert_close(_run("padll", compiled_baselines, batch, 0.1), expected)


def test_cell_mixes_exponential_and_logistic_equally(compiled_baselines: dict[str, LossFn]) -> None:
    batch = make_batch(8, seed=5)
    z = 0.3 * _margin(batch)
    expected = 0.5 * torch.exp(-z) + 0.5 * -F.logsigmoid(z)
    torch.testing.assert_close(_run("cell", compiled_baselines, batch, 0.3), expected)


def test_pfl_branches_on_the_policy_alone(compiled_baselines: dict[str, LossFn]) -> None:
    """PFL's 'correct' test is pc > pr, so a pair with a negative margin can take the logistic
    branch and one with a positive margin the hinge branch."""
    t = lambda *values: torch.tensor(values, dtype=torch.float64)  # noqa: E731
    batch = make_batch(2, seed=6)
    batch = PreferenceBatch(
        policy_chosen_logps=t(-50.0, -80.0),
        policy_rejected_logps=t(-60.0, -70.0),
        ref_chosen_logps=t(-30.0, -100.0),  # example 0: pc > pr but Δ = -30 + 10 = -10 < 0
        ref_rejected_logps=t(-50.0, -70.0),  # example 1: pc < pr but Δ = 20 > 0
        chosen_lengths=batch.chosen_lengths,
        rejected_lengths=batch.rejected_lengths,
        refs_chosen_logps=batch.refs_chosen_logps,
        refs_rejected_logps=batch.refs_rejected_logps,
    )
    z = 0.1 * _margin(batch)
    expected = t(float(-F.logsigmoid(z[0]) / 2), float(torch.relu(1 - z[1]) * 2))
    torch.testing.assert_close(_run("pfl", compiled_baselines, batch, 0.1), expected)


def test_dbaql_blends_evenly_when_all_margins_agree(compiled_baselines: dict[str, LossFn]) -> None:
    batch = make_batch(4, seed=7)
    same = batch.with_policy(
        batch.ref_chosen_logps + 1.0, batch.ref_rejected_logps - 1.0
    )  # Δ = 2 everywhere: Var = 0, blend σ(0) = ½
    z = torch.full((4,), 0.2, dtype=torch.float64)
    expected = 0.5 * -F.logsigmoid(z / 0.9) + 0.5 * torch.exp(-0.9 * z)
    torch.testing.assert_close(_run("dbaql", compiled_baselines, same, 0.1), expected)


def test_aql_is_logistic_below_zero_and_hinge_above(compiled_baselines: dict[str, LossFn]) -> None:
    batch = make_batch(8, seed=8)
    z = 0.5 * _margin(batch)
    losses = _run("aql", compiled_baselines, batch, 0.5)
    low, high = z < -0.5, z > 0.5
    assert low.any() and high.any()
    torch.testing.assert_close(losses[low], -F.logsigmoid(z[low]), rtol=1e-3, atol=1e-4)
    torch.testing.assert_close(losses[high], torch.relu(1 - z[high]), rtol=1e-3, atol=1e-4)


def _mrpo(
    compiled: dict[str, LossFn], batch: PreferenceBatch, refs_c: torch.Tensor, refs_r: torch.Tensor
) -> torch.Tensor:
    fn = compiled["mrpo"]
    return fn(
        batch.policy_chosen_logps,
        batch.policy_rejected_logps,
        batch.ref_chosen_logps,
        batch.ref_rejected_logps,
        0.1,
        refs_chosen_logps=refs_c,
        refs_rejected_logps=refs_r,
    )


def test_mrpo_with_one_reference_is_dpo(compiled_baselines: dict[str, LossFn]) -> None:
    batch = make_batch(8, seed=9)
    dpo = _run("dpo", compiled_baselines, batch, 0.1)
    one = _mrpo(
        compiled_baselines, batch, batch.ref_chosen_logps[None], batch.ref_rejected_logps[None]
    )
    torch.testing.assert_close(one, dpo, rtol=1e-9, atol=1e-9)
    same = _mrpo(
        compiled_baselines,
        batch,
        batch.ref_chosen_logps.expand(3, -1),
        batch.ref_rejected_logps.expand(3, -1),
    )
    torch.testing.assert_close(same, dpo, rtol=1e-9, atol=1e-9)


def test_mrpo_uses_its_own_references_not_the_combined_one(
    compiled_baselines: dict[str, LossFn],
) -> None:
    batch = make_batch(8, seed=10)
    moved = replace(batch, ref_chosen_logps=batch.ref_chosen_logps - 5)
    torch.testing.assert_close(
        _run("mrpo", compiled_baselines, moved, 0.1), _run("mrpo", compiled_baselines, batch, 0.1)
    )


def test_mrpo_combined_reference_is_a_clipped_harmonic_mean(
    compiled_baselines: dict[str, LossFn],
) -> None:
    """With the policy at zero log-prob, loss = -logσ(β(log π̃_r - log π̃_c)): recover log π̃ for
    one response by fixing the other reference to be a single model."""
    t = lambda *values: torch.tensor(values, dtype=torch.float64)  # noqa: E731
    primary, auxiliary = -100.0, -104.0  # |aux - primary| = 4 < ε|primary| share: not clipped
    batch = make_batch(1, seed=0).with_policy(t(0.0), t(0.0))
    refs_c = t(primary, auxiliary)[:, None]
    refs_r = t(-50.0, -50.0)[:, None]  # both references agree on the rejected answer
    beta = 0.1
    losses = _mrpo(compiled_baselines, batch, refs_c, refs_r)
    combined_chosen = -50.0 - torch.logit(torch.exp(-losses)) / beta  # invert -logσ(β(...))
    confidence = t(abs(primary + 50.0), abs(auxiliary + 50.0)) + 1e-6
    weights = confidence / confidence.sum()
    harmonic = -torch.log((weights / torch.exp(refs_c[:, 0].to(torch.float64))).sum())
    torch.testing.assert_close(combined_chosen, harmonic.reshape(1), rtol=1e-9, atol=1e-6)
    assert primary > float(combined_chosen) > auxiliary

    # An auxiliary reference far from the primary is clipped to (1 + ε·share)·log π_0 before the
    # harmonic mean; the weights and ε's share still come from the unclipped log-probs.
    far = t(primary, -300.0)[:, None]
    losses = _mrpo(compiled_baselines, batch, far, refs_r)
    combined_chosen = -50.0 - torch.logit(torch.exp(-losses)) / beta
    share = 200.0 / (200.0 + 50.0 + 1e-6)  # |mean chosen| / (|mean chosen| + |mean rejected|)
    clipped = primary * (1 + 0.1 * share)  # about -108
    confidence = t(50.0, 250.0) + 1e-6
    weights = confidence / confidence.sum()
    expected = -torch.log(weights[0] * math.exp(-primary) + weights[1] * math.exp(-clipped))
    torch.testing.assert_close(combined_chosen, expected.reshape(1), rtol=1e-9, atol=1e-6)
    assert float(combined_chosen) > -110.0  # unclipped, it would be about -300
