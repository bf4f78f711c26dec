"""Layer 3, wide: behaviour where training happens, not only where the fixed probes look.

The fixed battery (battery.py) probes batches of up to 24 at a few betas in float32, with three
references and lengths 8..512. A loss can switch on what it never varies, so `check_wide` runs it
on a ladder of settings that span what the stages train with: batch sizes 1..2048 (tinylm's 32 and
the bandit's ~1152 among them), beta 0.001..10, float32 and float64 (the bandit trains in
float64), K = 1..8 references, reference log-probs from about -2000 to 0 and completion lengths
1..4096 (drawn together: ~0.01..4 nats a token, as real completions have), plus settings drawn
from `seed` (the parent draws a fresh seed per validation, so a proposer cannot aim a switch at
them). On every setting:

- shape (B,), floating, finite values and finite gradients w.r.t. the policy log-probs (settings
  below the loss's smallest defined batch, a limit the fixed battery measured, are skipped);
- direction, as a rule about pairs: a batch holds pairs, their swaps (the chosen and rejected
  sides exchanged: log-probs, references and lengths together) and other examples; where a pair's
  policy favours its chosen side by every measure (the margin against each reference, per token,
  and in raw log-probs), the swap must not lower that pair's loss. The pair and its swap share one
  batch, so batch statistics see the same batch on both sides;
- permutation equivariance in float64, with a tolerance that does not grow with B;
and once:
- values and gradients agree: the gradient the loss computes w.r.t. the policy log-probs matches
  central finite differences of its values (float64), along the margin and along each policy
  input, at many points. This rejects detach and straight-through tricks (a loss that shows one
  function and trains another). References are constants in training, so a detached reference is
  harmless and is not probed;
- consistency: a loss without batch statistics gives each example the same value at every batch
  size and in both dtypes.

Like battery.py it runs in the child on the candidate's function and in the parent on the rebuilt
graph; it isolates nothing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from sandbox.calling import LossFn, call_loss, fail, require_finite_gradients, with_grad
from sandbox.contract import POLICY_INPUTS
from sandbox.probes import SEED, Batch, select, swap
from sandbox.verdict import RejectionCode

MAX_TOKEN_NATS = 4.0  # per-token reference log-probs lie in -4..-0.01
MAX_REF_NATS = 2000.0
MAX_BETA_MARGIN = 8.0  # |β·(policy - reference)| per side stays below this
DRAWN = 3  # settings drawn from the seed, on top of the fixed ladder
ANCHORS = 8  # examples whose values must not depend on the batch around them


@dataclass(frozen=True)
class Setting:
    """One probe batch's shape: where on the training ranges it sits."""

    batch: int  # B
    beta: float
    dtype: torch.dtype
    refs: int  # K reference models
    max_length: int  # completion lengths are drawn log-uniformly in 1..max_length

    def describe(self) -> str:
        kind = "float64" if self.dtype == torch.float64 else "float32"
        return (
            f"batch size {self.batch}, beta={self.beta:g}, {kind}, K={self.refs} references, "
            f"lengths 1..{self.max_length}"
        )


_F32, _F64 = torch.float32, torch.float64
# Fixed ladder: every range end, the stages' batch sizes and betas, both dtypes.
LADDER: tuple[Setting, ...] = (
    Setting(1, 0.1, _F32, 1, 4),
    Setting(2, 10.0, _F64, 2, 4096),
    Setting(5, 0.001, _F32, 8, 16),
    Setting(25, 0.3, _F64, 5, 512),
    Setting(32, 0.1, _F32, 3, 64),  # tinylm's batch
    Setting(64, 3.0, _F32, 1, 4096),
    Setting(1152, 0.1, _F64, 1, 8),  # the bandit's full batch, in its dtype
    Setting(2048, 0.05, _F32, 4, 4096),
)


def drawn_settings(seed: int, count: int = DRAWN) -> tuple[Setting, ...]:
    """`count` settings drawn log-uniformly across the ranges."""
    gen = torch.Generator().manual_seed(seed)
    u = torch.rand(count, 5, generator=gen, dtype=torch.float64).tolist()
    return tuple(
        Setting(
            batch=max(1, round(math.exp(a * math.log(2048)))),
            beta=float(f"{math.exp(math.log(1e-3) + b * math.log(1e4)):.4g}"),
            dtype=_F64 if c < 0.5 else _F32,
            refs=1 + int(d * 8) % 8,
            max_length=max(1, round(math.exp(e * math.log(4096)))),
        )
        for a, b, c, d, e in u
    )


def _draw_lengths_refs(n: int, s: Setting, gen: torch.Generator) -> tuple[torch.Tensor, ...]:
    """(2, n) lengths and (2, n) references: ~0.01..4 nats a token, at most -2000 in all."""
    log_max = math.log(s.max_length)
    lengths = torch.exp(torch.rand(2, n, generator=gen, dtype=_F64) * log_max).round().long()
    lengths = lengths.clamp(1, s.max_length)  # (2, n): chosen, rejected
    per_token = 0.01 + (MAX_TOKEN_NATS - 0.01) * torch.rand(2, n, generator=gen, dtype=_F64)
    return lengths, -(lengths * per_token).clamp(max=MAX_REF_NATS)


def _below_zero(ref: torch.Tensor, shift: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """ref + shift; where that would reach 0, a point drawn at random in the room left below 0.

    Drawn, not clamped: clamping piles log-probs up at one value, and a loss may switch where two
    log-probs are equal (PFL does), so a probe should not sit there.
    """
    room = (-ref - 1e-3).clamp(min=0)  # (.., n)
    inside = ref + room * (0.05 + 0.9 * torch.rand(ref.shape, generator=gen, dtype=_F64))
    return torch.where(shift < room, ref + shift, inside)


def _example_dict(
    policy: torch.Tensor, ref: torch.Tensor, refs: torch.Tensor, lengths: torch.Tensor
) -> dict[str, torch.Tensor]:
    out = {
        "policy_chosen_logps": policy[0],
        "policy_rejected_logps": policy[1],
        "ref_chosen_logps": ref[0],
        "ref_rejected_logps": ref[1],
        "chosen_lengths": lengths[0],
        "rejected_lengths": lengths[1],
        "refs_chosen_logps": refs[0],
        "refs_rejected_logps": refs[1],
    }
    # Float inputs exactly representable in float32, so both dtypes see the same numbers.
    return {k: (v.to(_F32).to(_F64) if v.is_floating_point() else v) for k, v in out.items()}


def _sides(n: int, s: Setting, gen: torch.Generator) -> dict[str, torch.Tensor]:
    """n examples anywhere in the setting's ranges: |β·(policy - reference)| <= 8 per side."""
    lengths, ref = _draw_lengths_refs(n, s, gen)
    reach = min(24.0, MAX_BETA_MARGIN / s.beta)
    shift = reach * (2 * torch.rand(2, n, generator=gen, dtype=_F64) - 1)
    policy = _below_zero(ref, shift, gen)
    offsets = 2.0 * torch.randn(2, s.refs, n, generator=gen, dtype=_F64)  # (2, K, n)
    offsets = offsets - offsets.mean(dim=1, keepdim=True)
    return _example_dict(policy, ref, ref.unsqueeze(1) + offsets, lengths)


def _pairs(n: int, s: Setting, gen: torch.Generator) -> dict[str, torch.Tensor]:
    """n pairs with β·Δ in 1..8 (where a loss's direction is judged, as in battery.py).

    Δ is split at random between the two sides; the K references share offsets within a pair
    (small next to Δ), so each one sees the same margin. Lengths differ within a pair; pairs
    whose per-token margins disagree with Δ are left out by `favours_chosen`.
    """
    lengths, ref = _draw_lengths_refs(n, s, gen)
    z = torch.exp(torch.rand(n, generator=gen, dtype=_F64) * math.log(MAX_BETA_MARGIN))
    delta = z / s.beta  # (n,)
    split = torch.rand(n, generator=gen, dtype=_F64)
    chosen = _below_zero(ref[0], split * delta, gen)
    rejected = ref[1] - (delta - (chosen - ref[0]))  # Δ exact: s_c - s_r = delta
    u = 2 * torch.rand(s.refs, n, generator=gen, dtype=_F64) - 1  # (K, n)
    offsets = 0.05 * delta * (u - u.mean(dim=0, keepdim=True))
    refs = torch.stack([ref[0] + offsets, ref[1] + offsets])  # (2, K, n)
    out = _example_dict(torch.stack([chosen, rejected]), ref, refs, lengths)
    margin = (out["policy_chosen_logps"] - out["ref_chosen_logps"]) - (
        out["policy_rejected_logps"] - out["ref_rejected_logps"]
    )
    # Tiny betas cannot reach β·Δ = 1 within real log-probs: no direction pairs there.
    keep = (s.beta * margin.abs() >= 1.0) & (delta <= MAX_REF_NATS / 2)
    return {k: v[..., keep] for k, v in out.items()}


def favours_chosen(batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """(n,) +1 where every measure favours the chosen side, -1 where every one favours the
    rejected side, 0 where they disagree."""
    pc, pr = batch["policy_chosen_logps"], batch["policy_rejected_logps"]
    rc, rr = batch["ref_chosen_logps"], batch["ref_rejected_logps"]
    lc, lr = batch["chosen_lengths"].to(pc.dtype), batch["rejected_lengths"].to(pc.dtype)
    margins = torch.stack(
        [
            (pc - rc) - (pr - rr),
            pc - pr,
            pc / lc - pr / lr,
            (pc - rc) / lc - (pr - rr) / lr,
            *((pc - batch["refs_chosen_logps"]) - (pr - batch["refs_rejected_logps"])),
        ]
    )  # (measures, n)
    return (margins > 0).all(0).double() - (margins < 0).all(0).double()


def _cat(parts: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    return {k: torch.cat([p[k] for p in parts], dim=-1) for k in parts[0]}


def setting_batch(s: Setting, seed: int) -> tuple[Batch, int]:
    """A batch for `s` and its number P of clear pairs: examples 0..P-1 favour the chosen side,
    P..2P-1 are their swaps, the rest are other examples. Float inputs in `s.dtype`."""
    gen = torch.Generator().manual_seed(seed)
    pairs = s.batch // 4
    drawn = _pairs(3 * pairs, s, gen)  # more than needed: not every pair is clear
    sign = favours_chosen(drawn)  # (n,)
    swapped = swap(drawn)
    oriented = {k: torch.where(sign < 0, swapped[k], v) for k, v in drawn.items()}
    clear = sign.nonzero().flatten()[:pairs]
    favoured = {k: v[..., clear] for k, v in oriented.items()}
    rest = _sides(s.batch - 2 * len(clear), s, gen)
    batch = _cat([favoured, swap(favoured), rest])
    batch = {k: (v.to(s.dtype) if v.is_floating_point() else v) for k, v in batch.items()}
    batch["beta"] = torch.tensor(s.beta, dtype=s.dtype)
    return batch, len(clear)


def check_wide(
    fn: LossFn,
    inputs: Sequence[str],
    *,
    seed: int = SEED,
    min_batch: int = 1,
    full: bool = True,
) -> None:
    """Run every wide check on `fn`; raise `RejectionError` at the first fault.

    `full=False` (the worker's early look at the function, before the parent's full run on the
    rebuilt graph) keeps to the fixed ladder and skips the finite differences.
    """
    gen = torch.Generator().manual_seed(seed + 101)
    settings = LADDER + drawn_settings(seed) if full else LADDER
    for index, s in enumerate(settings):
        if s.batch < min_batch:
            continue
        batch, pairs = setting_batch(s, seed + index)
        _check_setting(fn, inputs, s, batch, pairs)
        base = _forward64(fn, inputs, s, batch)
        _check_dtypes(fn, inputs, s, batch, base)
        if s.batch >= 2:
            _check_permutation(fn, inputs, s, batch, base, gen)
        if full:
            _check_gradients(fn, inputs, s, batch, gen)
    _check_consistency(fn, inputs, seed, min_batch)


def _check_setting(fn: LossFn, inputs: Sequence[str], s: Setting, batch: Batch, pairs: int) -> None:
    """Finite values and policy gradients in the setting's dtype; the direction rule on pairs."""
    where = s.describe()
    out, grads = with_grad(fn, batch, inputs, where)
    bad = ~torch.isfinite(out)
    if bad.any():
        raise fail(
            RejectionCode.NON_FINITE,
            f"returns {out[bad][0].item()} at {where} (reference log-probs down to "
            f"-{MAX_REF_NATS:g}, |β·(policy - reference)| <= {MAX_BETA_MARGIN:g}); keep it "
            "finite wherever training runs",
        )
    require_finite_gradients(
        grads,
        f"at {where}",
        "avoid sqrt/log/division at zero, and indexing that depends on the batch or the lengths",
    )
    favoured, swapped = out[:pairs], out[pairs : 2 * pairs]
    worse = favoured > swapped + 1e-6 + 1e-5 * swapped.abs()
    if worse.any():
        i = int(worse.nonzero()[0, 0])
        raise fail(
            RejectionCode.REWARDS_REJECTED,
            f"the loss is lower when the rejected answer is preferred: swapping a pair's sides "
            f"(log-probs, references and lengths) where the policy favours the chosen one lowers "
            f"its loss from {favoured[i]:.4g} to {swapped[i]:.4g} at {where}; the loss must "
            "not reward the rejected answer",
        )


def _as(batch: Batch, dtype: torch.dtype) -> Batch:
    return {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in batch.items()}


def _forward64(fn: LossFn, inputs: Sequence[str], s: Setting, batch: Batch) -> torch.Tensor:
    with torch.no_grad():
        out = call_loss(fn, select(_as(batch, _F64), inputs), f"{s.describe()}, in float64")
    return out.to(_F64)


def _close(a: torch.Tensor, b: torch.Tensor, rtol: float) -> torch.Tensor:
    """Within rtol of each other or of the batch's scale: a tolerance that does not grow with B."""
    scale = 1.0 + float(b.abs().max()) if b.numel() else 1.0
    return (a - b).abs() <= rtol * (b.abs() + scale)


def _check_dtypes(
    fn: LossFn, inputs: Sequence[str], s: Setting, batch: Batch, base: torch.Tensor
) -> None:
    """The same numbers in float32 and float64 give the same losses (to float32's precision)."""
    with torch.no_grad():
        out = call_loss(fn, select(_as(batch, _F32), inputs), f"{s.describe()}, in float32")
    # float32 rounds each input by ~6e-8 of its size; β times that moves the margin.
    slack = 1e-5 * s.beta * float(batch["ref_chosen_logps"].abs().max().clamp(min=1.0))
    ok = (out.to(_F64) - base).abs() <= slack + 1e-4 * (base.abs() + 1 + base.abs().max())
    if not ok.all():
        i = int((~ok).nonzero()[0, 0])
        raise fail(
            RejectionCode.INCONSISTENT,
            f"an example's loss is {out[i]:.8g} in float32 but {base[i]:.8g} in float64 on the "
            f"same inputs ({s.describe()}); a loss must compute the same function in both dtypes",
        )


def _check_permutation(
    fn: LossFn,
    inputs: Sequence[str],
    s: Setting,
    batch: Batch,
    base: torch.Tensor,
    gen: torch.Generator,
) -> None:
    perm = torch.randperm(s.batch, generator=gen)
    permuted = {k: (v if k == "beta" else v[..., perm]) for k, v in _as(batch, _F64).items()}
    with torch.no_grad():
        out = call_loss(fn, select(permuted, inputs), f"permuted, {s.describe()}").to(_F64)
    ok = _close(out, base[perm], 1e-7)
    if not ok.all():
        i = int((~ok).nonzero()[0, 0])
        raise fail(
            RejectionCode.NOT_PERMUTATION_EQUIVARIANT,
            f"an example's loss changes when the batch is reordered ({base[perm][i]:.10g} -> "
            f"{out[i]:.10g} at {s.describe()}, float64); it may use batch statistics (mean, "
            "std) but not an example's position in the batch",
        )


def _check_gradients(
    fn: LossFn, inputs: Sequence[str], s: Setting, batch: Batch, gen: torch.Generator
) -> None:
    """Autograd's directional derivatives against central differences of the values, float64."""
    batch = _as(batch, _F64)
    size = s.batch
    weights = torch.rand(size, generator=gen, dtype=_F64) + 0.5  # (B,)
    kwargs = select(batch, inputs)
    leaves = [kwargs[name].requires_grad_(True) for name in POLICY_INPUTS]
    out = call_loss(fn, kwargs, f"gradient check, {s.describe()}")
    grads = [torch.zeros_like(leaf) for leaf in leaves]
    if out.requires_grad:
        found = torch.autograd.grad((weights * out).sum(), leaves, allow_unused=True)
        grads = [g if g is not None else z for g, z in zip(found, grads, strict=True)]
    centre = float((weights * out.detach().to(_F64)).sum())
    random = torch.randn(2, size, generator=gen, dtype=_F64)
    ones, zeros = torch.ones(size, dtype=_F64), torch.zeros(size, dtype=_F64)
    directions = {
        "along the margin": (ones, -ones),
        "along policy_chosen_logps": (random[0], zeros),
        "along policy_rejected_logps": (zeros, random[1]),
    }
    for label, (vc, vr) in directions.items():
        analytic = float((grads[0] * vc).sum() + (grads[1] * vr).sum())
        # Three step sizes: a jump in the values (PFL's switch, PADLL's at Δ = 0) that falls
        # between x - h and x + h spoils one of them, not all; a gradient that is not the
        # derivative of the values fails at every step size.
        numeric = 0.0
        for step in (1e-5, 1e-6, 1e-7):  # in units of β·Δ
            plus, minus = (
                _moved_value(
                    fn, inputs, batch, weights, sign * step / s.beta * vc, sign * step / s.beta * vr
                )
                for sign in (1.0, -1.0)
            )
            h = step / s.beta
            # Central, forward and backward differences: an example sitting exactly on a jump
            # (a margin of exactly 0 under PADLL) spoils the central one at every step size.
            candidates = ((plus - minus) / (2 * h), (plus - centre) / h, (centre - minus) / h)
            # Truncation error is O(h) at worst; rounding ~1e-16·|loss|/h.
            tolerance = [1e-4 * (abs(analytic) + abs(d)) + 1e-6 * size for d in candidates]
            numeric = candidates[0]
            if any(abs(analytic - d) <= t for d, t in zip(candidates, tolerance, strict=True)):
                break
        else:
            raise fail(
                RejectionCode.GRADIENT_MISMATCH,
                f"the gradient does not match the loss's values {label} (autograd "
                f"{analytic:.6g}, finite differences {numeric:.6g}, at {s.describe()}, in "
                "float64); training would follow another function than the one shown: no "
                "detach or straight-through tricks",
            )


def _moved_value(
    fn: LossFn,
    inputs: Sequence[str],
    batch: Batch,
    weights: torch.Tensor,
    dc: torch.Tensor,
    dr: torch.Tensor,
) -> float:
    """Σ w·loss with the policy log-probs moved by (dc, dr), each (B,)."""
    moved = dict(batch)
    moved["policy_chosen_logps"] = batch["policy_chosen_logps"] + dc
    moved["policy_rejected_logps"] = batch["policy_rejected_logps"] + dr
    with torch.no_grad():
        out = call_loss(fn, select(moved, inputs), "gradient check").to(_F64)
    return float((weights * out).sum())


def _check_consistency(fn: LossFn, inputs: Sequence[str], seed: int, min_batch: int) -> None:
    """Without batch statistics, anchor examples keep their values at every batch size.

    Whether a loss uses batch statistics is decided here, in float64 and tightly, at each batch
    size: do the anchors' values move when the examples around them are replaced? A statistic
    that barely moves (AQL's saturated quantile) still counts, and such a loss is judged by the
    per-setting checks only.
    """
    anchors, _ = setting_batch(Setting(ANCHORS, 0.1, _F64, 3, 1024), seed + 201)
    with torch.no_grad():
        reference = call_loss(fn, select(anchors, inputs), "consistency anchors").to(_F64)
    seen: list[tuple[Setting, torch.Tensor, int]] = []
    for size in (s for s in (1, 3, ANCHORS, 25, 33, 1152, 2048) if s >= min_batch):
        kept = 1 if size == 1 else min(size - 1, ANCHORS)  # anchors kept; the rest is filler
        outs = []
        for salt in (0, 1):
            batch = {k: (v if k == "beta" else v[..., :kept]) for k, v in anchors.items()}
            if size > kept:
                filler, _ = setting_batch(
                    Setting(size - kept, 0.1, _F64, 3, 1024), seed + 202 + 2 * size + salt
                )
                batch = {
                    k: (v if k == "beta" else torch.cat([v, filler[k]], -1))
                    for k, v in batch.items()
                }
            with torch.no_grad():
                out = call_loss(fn, select(batch, inputs), f"batch size {size}, float64")
            outs.append(out.to(_F64)[:kept])
        if not bool(_close(outs[0], outs[1], 1e-12).all()):
            return  # batch statistics: values legitimately depend on the batch
        seen.append((Setting(size, 0.1, _F64, 3, 1024), outs[0], kept))
    for s, out, kept in seen:
        ok = _close(out, reference[:kept], 1e-9)
        if not ok.all():
            i = int((~ok).nonzero()[0, 0])
            raise fail(
                RejectionCode.INCONSISTENT,
                f"an example's loss is {out[i]:.10g} at {s.describe()} but {reference[i]:.10g} "
                f"in a batch of {ANCHORS}, and it does not change when the rest of the batch "
                "changes; without batch statistics a loss must give each example the same "
                "value at every batch size",
            )
