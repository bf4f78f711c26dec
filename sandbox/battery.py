"""Layer 3: the behaviour battery (DESIGN.md section 3, item 3).

`run_battery(fn, inputs)` calls a loss on the probe batches of probes.py and raises `RejectionError`
with a specific reason at the first fault, or returns the `BatteryLimits` it measured:

- output: a plain `torch.Tensor` of shape (B,) and a floating dtype, for B in 1, 2, 3, 4, 8, 16;
- inputs left untouched (version counters and values), so no in-place edits;
- finite values, and finite gradients w.r.t. the policy log-probs, on realistic inputs (summed
  log-probs in -1000..0, policy within tens of nats of the reference) for beta in 0.01..1;
- some gradient w.r.t. the policy log-probs (a loss that ignores the policy cannot train);
- permutation equivariance (batch statistics are fine, positions are not);
- margin direction, a rule about pairs: for |β·Δ| in 1, 2, 4, 8 and three ways of splitting Δ
  between the chosen and rejected log-ratios (lengths and references equal within the pair, so the
  policy favours the chosen side by every measure), swapping the pair's sides (log-probs,
  references and lengths together) never lowers its loss. This is deliberately weaker
  than "non-increasing everywhere": IPO, SPPO, NCA, APO-down and EXO rise past their target
  margin, DiscoPOP's LRML has a bump near zero and PADLL a jump at zero, and all are accepted
  baselines; a loss that rewards the rejected answer fails it at every margin;
- limits, recorded not rejected: the smallest batch size with finite values (up to 4; beyond
  that it is a fault), the smallest |β·Δ| on a ladder up to 1024 where values or gradients stop
  being finite, whether beta is used, and whether examples depend on each other;
- then the wide checks of coverage.py, where training happens: batch sizes up to 2048, beta
  0.001..10, float64, 1..8 references, lengths 1..4096; gradients that agree with the values;
  values that do not depend on the batch size or dtype unless the loss uses batch statistics.

The same function runs in the child on the candidate's Python function and in the parent on the
rebuilt graph (so a forged child report cannot smuggle a failing graph past it). It does not
isolate anything: in the parent it only ever runs rebuilt graphs, never candidate source.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from sandbox import coverage, probes
from sandbox.calling import (
    LossFn,
    call_loss,
    classify_exception,
    fail,
    require_finite_gradients,
    with_grad,
)
from sandbox.errors import RejectionError
from sandbox.verdict import BatteryLimits, RejectionCode

__all__ = ["LossFn", "call_loss", "classify_exception", "run_battery"]

SHAPE_BATCHES = (1, 2, 3, 4, 8, 16)
MAX_MIN_BATCH = 4  # a loss must be defined for batches of this size
REALISTIC_BATCH = 16
BETAS = (0.01, 0.1, 0.5, 1.0)
DIRECTION_MARGINS = (1.0, 2.0, 4.0, 8.0)  # |β·Δ|
DIRECTION_BETAS = (0.1, 1.0)
OVERFLOW_LADDER = (32.0, 64.0, 128.0, 256.0, 512.0, 1024.0)  # |β·Δ| at beta = 1


def _check_untouched(
    before: dict[str, torch.Tensor], versions: dict[str, int], after: dict[str, torch.Tensor]
) -> None:
    for name, tensor in after.items():
        changed = tensor._version != versions[name] or not torch.equal(tensor, before[name])
        if changed:
            raise fail(
                RejectionCode.INPLACE_INPUT,
                f"edits its input {name} in place; inputs are shared with the trainer, "
                "use out-of-place ops (x = x * 2, not x *= 2 or x.mul_(2))",
            )


def _margins(batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """β·Δ per example, (B,)."""
    delta = (batch["policy_chosen_logps"] - batch["ref_chosen_logps"]) - (
        batch["policy_rejected_logps"] - batch["ref_rejected_logps"]
    )
    return batch["beta"] * delta


def run_battery(
    fn: LossFn, inputs: Sequence[str], seed: int = probes.SEED, full: bool = True
) -> BatteryLimits:
    """Run every check on `fn`; raise `RejectionError` at the first fault.

    `seed` draws the wide checks' extra settings; the parent passes a fresh one per validation.
    `full=False` is the worker's early look at the function: the wide checks on the fixed ladder
    only, without finite differences (the parent's full run on the rebuilt graph decides).
    """
    min_batch = _check_shapes(fn, inputs)
    outputs = _check_realistic(fn, inputs)
    _check_permutation(fn, inputs, outputs[0.1])
    batch_dependent = _is_batch_dependent(fn, inputs, outputs[0.1])
    _check_direction(fn, inputs)
    coverage.check_wide(fn, inputs, seed=seed, min_batch=min_batch, full=full)
    return BatteryLimits(
        min_batch_size=min_batch,
        overflow_margin=_overflow_margin(fn, inputs),
        uses_beta=not torch.equal(outputs[0.1], outputs[0.5]),
        batch_dependent=batch_dependent,
    )


def _check_shapes(fn: LossFn, inputs: Sequence[str]) -> int:
    """Shapes, dtype and untouched inputs at every size; returns the smallest defined batch."""
    defined: dict[int, bool] = {}
    for size in SHAPE_BATCHES:
        batch = probes.realistic(size, 0.1)
        kwargs = probes.select(batch, inputs)
        before = {name: t.clone() for name, t in kwargs.items()}
        versions = {name: t._version for name, t in kwargs.items()}
        try:
            with torch.no_grad():
                out = call_loss(fn, kwargs, f"batch size {size}")
        except RejectionError as exc:
            if exc.code is RejectionCode.EXCEPTION and size < MAX_MIN_BATCH:
                defined[size] = False
                continue
            raise
        finally:
            _check_untouched(before, versions, kwargs)
        defined[size] = bool(torch.isfinite(out).all())
    min_batch = next(
        (s for s in SHAPE_BATCHES if all(defined[t] for t in SHAPE_BATCHES if t >= s)), None
    )
    if min_batch is None or min_batch > MAX_MIN_BATCH:
        worst = max(s for s in SHAPE_BATCHES if not defined[s])
        raise fail(
            RejectionCode.BATCH_TOO_SMALL,
            f"values are not finite for a batch of {worst}; a loss must be defined for "
            f"batches of {MAX_MIN_BATCH} or more (batch statistics need care)",
        )
    return min_batch


def _check_realistic(fn: LossFn, inputs: Sequence[str]) -> dict[float, torch.Tensor]:
    """Finite values and gradients, and some policy gradient, across beta; returns the losses."""
    outputs: dict[float, torch.Tensor] = {}
    any_gradient = False
    for beta in BETAS:
        batch = probes.realistic(REALISTIC_BATCH, beta)
        context = f"beta={beta}, {REALISTIC_BATCH} realistic pairs"
        out, grads = with_grad(fn, batch, inputs, context)
        bad = ~torch.isfinite(out)
        if bad.any():
            index = int(bad.nonzero()[0, 0])
            raise fail(
                RejectionCode.NON_FINITE,
                f"returns {out[index].item()} at beta={beta} where β·Δ = "
                f"{_margins(batch)[index].item():.3g} (summed log-probs in -1000..0); "
                "keep it finite, e.g. F.logsigmoid/softplus instead of log(sigmoid), "
                "clamp exponents",
            )
        require_finite_gradients(
            grads,
            f"at beta={beta} on realistic inputs",
            "avoid sqrt/log/division at zero and overflowing exp",
        )
        any_gradient = any_gradient or any(bool((grad != 0).any()) for grad in grads)
        outputs[beta] = out
    if not any_gradient:
        raise fail(
            RejectionCode.NO_POLICY_GRADIENT,
            "the loss does not depend on the policy log-probs (zero gradient w.r.t. "
            "policy_chosen_logps and policy_rejected_logps); it cannot train anything",
        )
    return outputs


def _close(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    scale = 1.0 + float(b.abs().max()) if b.numel() else 1.0
    return (a - b).abs() <= 1e-4 * b.abs() + 1e-5 * scale


def _check_permutation(fn: LossFn, inputs: Sequence[str], base: torch.Tensor) -> None:
    gen = torch.Generator().manual_seed(probes.SEED + 11)
    perm = torch.randperm(REALISTIC_BATCH, generator=gen)
    batch = probes.permute(probes.realistic(REALISTIC_BATCH, 0.1), perm)
    with torch.no_grad():
        out = call_loss(fn, probes.select(batch, inputs), "permuted batch")
    ok = _close(out, base[perm])
    if not ok.all():
        index = int((~ok).nonzero()[0, 0])
        raise fail(
            RejectionCode.NOT_PERMUTATION_EQUIVARIANT,
            "an example's loss changes when the batch is reordered "
            f"({base[perm][index]:.4g} -> {out[index]:.4g}); it may use batch statistics "
            "(mean, std) but not an "
            "example's position in the batch",
        )


def _is_batch_dependent(fn: LossFn, inputs: Sequence[str], base: torch.Tensor) -> bool:
    """Does example 0's loss change when the other examples change?"""
    first = probes.realistic(REALISTIC_BATCH, 0.1)
    other = probes.realistic(REALISTIC_BATCH, 0.1, seed=probes.SEED + 7)
    batch = {
        n: (t if n == "beta" else torch.cat([t[..., :1], other[n][..., 1:]], dim=-1))
        for n, t in first.items()
    }
    with torch.no_grad():
        out = call_loss(fn, probes.select(batch, inputs), "batch with other examples changed")
    return not bool(_close(out[:1], base[:1]).all())


def _check_direction(fn: LossFn, inputs: Sequence[str]) -> None:
    for beta in DIRECTION_BETAS:
        favoured, labels = [], []
        for split in probes.SPLITS:
            for z in DIRECTION_MARGINS:
                favoured.append(probes.with_margins(torch.tensor([z / beta]), beta, split))
                labels.append(z)
        pairs = probes.concat(favoured)
        batch = probes.concat([pairs, probes.swap(pairs)])  # one batch: same batch statistics
        with torch.no_grad():
            out = call_loss(fn, probes.select(batch, inputs), f"margin grid, beta={beta}")
        kept, swapped = out.view(2, -1)  # (2, pairs): as given, sides swapped
        finite = torch.isfinite(kept) & torch.isfinite(swapped)
        bad = (kept > swapped + 1e-6 + 1e-5 * swapped.abs()) & finite
        if bad.any():
            index = int(bad.nonzero()[0, 0])
            z = labels[index]
            raise fail(
                RejectionCode.REWARDS_REJECTED,
                f"the loss is lower when the rejected answer is preferred: "
                f"{swapped[index]:.4g} at β·Δ = -{z:g} (the pair's sides swapped) but "
                f"{kept[index]:.4g} at β·Δ = +{z:g} (beta={beta}); the loss must not reward a "
                "negative chosen-minus-rejected margin (check the sign of the margin)",
            )


def _overflow_margin(fn: LossFn, inputs: Sequence[str]) -> float | None:
    base = probes.realistic(4, 1.0)
    for z in OVERFLOW_LADDER:
        batch = probes.concat([base, probes.with_margins(torch.tensor([z, -z]), 1.0)])
        out, grads = with_grad(fn, batch, inputs, f"margin ladder |β·Δ| = {z:g}")
        if not (torch.isfinite(out).all() and all(torch.isfinite(g).all() for g in grads)):
            return z
    return None
