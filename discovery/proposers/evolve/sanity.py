"""A cheap screen for expression trees before they become proposals (the sandbox is the real gate).

`sanity_problem(tree)` evaluates the tree directly with torch (never source text) on a few fixed
batches and names the first problem, or returns None:

- realistic inputs as the sandbox's battery draws them (summed log-probs in -1000..-1, the policy
  within 24 nats of the reference, beta in 0.01..1, batches of 16 and of 4): the output has
  shape (B,) and finite values, its gradients w.r.t. the policy log-probs are finite, and some
  gradient is non-zero (a loss that ignores the policy cannot train);
- the margin grid: for |β·Δ| in 1, 2, 4, 8, three ways of splitting Δ between s_c and s_r and
  beta 0.1 and 1, the loss at +Δ must not exceed the loss at -Δ (it must not reward preferring
  the rejected answer); completion lengths are drawn at random per row, as the sandbox does, in
  several independent draws.

These mirror the sandbox's checks so that few proposals are wasted; passing them proves nothing.
The batches come from a fixed torch seed (they are probe data, not search randomness), so the
screen is deterministic. This module does not mutate trees or run candidate code.
"""

from __future__ import annotations

import functools
from typing import Any

import torch

from discovery.proposers.evolve.evaluate import evaluate
from discovery.proposers.evolve.expr import LENGTH_LEAVES, Node, leaves_used

__all__ = ["sanity_problem"]

Batch = dict[str, Any]

_SEED = 1729  # fixed: the probe batches are constants of the screen
_REALISTIC_BETAS = (0.01, 0.1, 0.5, 1.0)
_DIRECTION_BETAS = (0.1, 1.0)
_DIRECTION_MARGINS = (1.0, 2.0, 4.0, 8.0)  # |β·Δ|
_SPLITS = ((0.5, -0.5), (1.0, 0.0), (0.0, -1.0))  # (share of Δ in s_c, share in s_r)
_LENGTH_DRAWS = 4  # margin grids with independently drawn completion lengths


def _lengths(batch: int, gen: torch.Generator) -> dict[str, torch.Tensor]:
    return {
        "chosen_lengths": torch.randint(8, 513, (batch,), generator=gen),
        "rejected_lengths": torch.randint(8, 513, (batch,), generator=gen),
    }


def _realistic(batch: int, beta: float, seed: int) -> Batch:
    """Summed log-probs in (-1000, -1]; policy = reference + N(0, 8²) clipped to ±24 nats."""
    gen = torch.Generator().manual_seed(seed)
    rc = -1.0 - 999.0 * torch.rand(batch, generator=gen)
    rr = -1.0 - 999.0 * torch.rand(batch, generator=gen)
    pc = (rc + 8.0 * torch.randn(batch, generator=gen).clamp(-3, 3)).clamp(max=-0.01)
    pr = (rr + 8.0 * torch.randn(batch, generator=gen).clamp(-3, 3)).clamp(max=-0.01)
    return {
        "policy_chosen_logps": pc,
        "policy_rejected_logps": pr,
        "ref_chosen_logps": rc,
        "ref_rejected_logps": rr,
        "beta": torch.tensor(beta),
        **_lengths(batch, gen),
    }


def _margin_grid(beta: float, seed: int) -> Batch:
    """Rows in pairs (+Δ, -Δ) over margins and splits; references at -300 nats."""
    gen = torch.Generator().manual_seed(seed)
    margins = torch.tensor(
        [s * z / beta for _ in _SPLITS for z in _DIRECTION_MARGINS for s in (1, -1)]
    )
    share_c = torch.tensor([c for c, _ in _SPLITS for _ in range(2 * len(_DIRECTION_MARGINS))])
    share_r = torch.tensor([r for _, r in _SPLITS for _ in range(2 * len(_DIRECTION_MARGINS))])
    ref = torch.full_like(margins, -300.0)
    return {
        "policy_chosen_logps": ref + share_c * margins,
        "policy_rejected_logps": ref + share_r * margins,
        "ref_chosen_logps": ref,
        "ref_rejected_logps": ref.clone(),
        "beta": torch.tensor(beta),
        **_lengths(margins.shape[0], gen),
    }


@functools.cache
def _probes() -> tuple[tuple[Batch, ...], tuple[Batch, ...]]:
    """(realistic batches, margin grids); built on first use, never modified."""
    realistic = [_realistic(16, beta, _SEED + i) for i, beta in enumerate(_REALISTIC_BETAS)]
    realistic.append(_realistic(4, 0.1, _SEED + 99))  # batch statistics over a small batch
    # Per-token leaves see random lengths, as in the sandbox: several draws make a pass likelier
    # to hold for the sandbox's own draw.
    grids = tuple(
        _margin_grid(beta, _SEED + 50 + 10 * draw + i)
        for draw in range(_LENGTH_DRAWS)
        for i, beta in enumerate(_DIRECTION_BETAS)
    )
    return tuple(realistic), grids


def _realistic_problem(tree: Node, batch: Batch) -> tuple[str | None, bool]:
    """(problem, whether some policy gradient is non-zero) on one realistic batch."""
    inputs = dict(batch)
    leaves = [
        inputs[name].clone().requires_grad_(True)
        for name in ("policy_chosen_logps", "policy_rejected_logps")
    ]
    inputs["policy_chosen_logps"], inputs["policy_rejected_logps"] = leaves
    size, beta = leaves[0].shape[0], float(batch["beta"])
    out = evaluate(tree, inputs)
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (size,):
        return f"does not return per-example losses of shape ({size},)", False
    if not torch.isfinite(out).all():
        return f"is not finite on realistic inputs at beta={beta:g}, B={size}", False
    if not out.requires_grad:
        return None, False
    grads = torch.autograd.grad(out.sum(), leaves, allow_unused=True)
    moved = False
    for grad in grads:
        if grad is None:
            continue
        if not torch.isfinite(grad).all():
            return f"has non-finite gradients on realistic inputs at beta={beta:g}", False
        moved = moved or bool((grad != 0).any())
    return None, moved


def _direction_problem(tree: Node, grid: Batch) -> str | None:
    with torch.no_grad():
        out = evaluate(tree, grid)
    pairs = out.view(-1, 2)  # (pairs, [+Δ, -Δ])
    favoured, disfavoured = pairs[:, 0], pairs[:, 1]
    finite = torch.isfinite(pairs).all(dim=1)
    worse = favoured > disfavoured + 1e-6 + 1e-5 * disfavoured.abs()
    if (worse & finite).any():
        beta = float(grid["beta"])
        return f"is lower at a negative margin than at the positive one (beta={beta:g})"
    return None


def sanity_problem(tree: Node) -> str | None:
    """The first problem found on the fixed probe batches, or None. Never raises for a tree."""
    realistic, grids = _probes()
    try:
        any_gradient = False
        for batch in realistic:
            problem, moved = _realistic_problem(tree, batch)
            if problem is not None:
                return problem
            any_gradient = any_gradient or moved
        if not any_gradient:
            return "has a zero gradient w.r.t. the policy log-probs (it cannot train)"
        if not leaves_used(tree) & set(LENGTH_LEAVES):
            grids = grids[: len(_DIRECTION_BETAS)]  # other draws differ only in lengths
        for grid in grids:
            problem = _direction_problem(tree, grid)
            if problem is not None:
                return problem
    except (RuntimeError, ValueError, TypeError) as exc:  # a tree torch cannot evaluate
        return f"cannot be evaluated ({type(exc).__name__}: {str(exc)[:120]})"
    return None
