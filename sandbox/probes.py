"""Deterministic inputs for the behaviour battery, the value check and the fingerprint.

Every batch is a dict of keyword arguments in the contract's names, built from a fixed seed with
an explicit `torch.Generator` (no global randomness), so the child, the parent and any later
re-check build bit-identical inputs. Shapes: log-probs (B,) float32, `*_lengths` (B,) int64,
`refs_*` (K, B) float32 whose mean over K is the combined reference `ref_*_logps`, `beta` a 0-dim
float32 tensor, as inside graphs.

"Realistic" follows DESIGN.md section 3: summed log-probs in -1000..0, the policy within tens of
nats of the reference. Margin batches set the margin Δ = (pc - rc) - (pr - rr) exactly, with
rc = rr, to probe how the loss responds to it.

This module only builds tensors; it runs no loss and judges nothing.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import torch

from sandbox.contract import ALL_INPUTS

Batch = dict[str, torch.Tensor]

NUM_REFS = 3  # K in every probe batch
SEED = 20240607  # fixed: probes must be identical in the child, the parent and later re-checks

# Margin splits: how Δ is divided between the chosen (s_c) and rejected (s_r) log-ratios.
SPLITS: tuple[tuple[float, float], ...] = ((0.5, -0.5), (1.0, 0.0), (0.0, -1.0))


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _assemble(
    pc: torch.Tensor,
    pr: torch.Tensor,
    rc: torch.Tensor,
    rr: torch.Tensor,
    *,
    beta: float,
    gen: torch.Generator,
    paired: bool = False,
) -> Batch:
    """Add lengths and K references (offsets of mean zero around the combined reference).

    `paired`: the rejected side gets the chosen side's lengths and reference offsets, so that a
    margin Δ > 0 favours the chosen side by every measure (per token, against each reference).
    """
    batch = pc.shape[0]
    offsets = 2.0 * torch.randn(2, NUM_REFS, batch, generator=gen)  # (2, K, B)
    offsets = offsets - offsets.mean(dim=1, keepdim=True)
    lengths = torch.randint(8, 513, (2, batch), generator=gen)  # (2, B)
    if paired:
        offsets, lengths = offsets[[0, 0]], lengths[[0, 0]]
    return {
        "policy_chosen_logps": pc,
        "policy_rejected_logps": pr,
        "ref_chosen_logps": rc,
        "ref_rejected_logps": rr,
        "beta": torch.tensor(beta, dtype=torch.float32),
        "chosen_lengths": lengths[0],
        "rejected_lengths": lengths[1],
        "refs_chosen_logps": rc.unsqueeze(0) + offsets[0],  # (K, B)
        "refs_rejected_logps": rr.unsqueeze(0) + offsets[1],  # (K, B)
    }


@functools.cache
def realistic(batch: int, beta: float, seed: int = SEED) -> Batch:
    """Summed log-probs in (-1000, -1]; policy = reference + N(0, 8²) clipped to ±24 nats.

    Cached: callers must not modify the tensors (`select` hands out clones).
    """
    gen = _generator(seed)
    rc = -1.0 - 999.0 * torch.rand(batch, generator=gen)
    rr = -1.0 - 999.0 * torch.rand(batch, generator=gen)
    pc = (rc + 8.0 * torch.randn(batch, generator=gen).clamp(-3, 3)).clamp(max=-0.01)
    pr = (rr + 8.0 * torch.randn(batch, generator=gen).clamp(-3, 3)).clamp(max=-0.01)
    return _assemble(pc, pr, rc, rr, beta=beta, gen=gen)


def with_margins(
    margins: torch.Tensor,
    beta: float,
    split: tuple[float, float] = SPLITS[0],
    level: float = -300.0,
    seed: int = SEED,
) -> Batch:
    """One example per margin Δ (B,), s_c = split[0]·Δ, s_r = split[1]·Δ, references at `level`.

    Both sides of a pair share lengths and reference offsets: only the margin tells them apart.
    """
    gen = _generator(seed)
    margins = margins.to(torch.float32)
    rc = torch.full_like(margins, level)
    pc = rc + split[0] * margins
    pr = rc + split[1] * margins
    return _assemble(pc, pr, rc, rc.clone(), beta=beta, gen=gen, paired=True)


_SIDES = (
    ("policy_chosen_logps", "policy_rejected_logps"),
    ("ref_chosen_logps", "ref_rejected_logps"),
    ("chosen_lengths", "rejected_lengths"),
    ("refs_chosen_logps", "refs_rejected_logps"),
)


def swap(batch: Batch) -> Batch:
    """The same pairs with chosen and rejected exchanged: log-probs, references and lengths."""
    out = dict(batch)
    for chosen, rejected in _SIDES:
        if chosen in batch:
            out[chosen], out[rejected] = batch[rejected], batch[chosen]
    return out


def concat(batches: Sequence[Batch]) -> Batch:
    """Join batches along B (dim -1, so (K, B) references join too); beta from the first."""
    out: Batch = {}
    for name in ALL_INPUTS:
        if name == "beta":
            out[name] = batches[0][name]
        else:
            out[name] = torch.cat([b[name] for b in batches], dim=-1)
    return out


def select(batch: Batch, names: Sequence[str]) -> Batch:
    """The arguments a function declares, as fresh tensors (a loss may not share our storage)."""
    return {name: batch[name].clone() for name in names}


def permute(batch: Batch, perm: torch.Tensor) -> Batch:
    """Reorder examples; beta is shared, references permute along their last (B) dim."""
    return {name: (t if name == "beta" else t[..., perm]) for name, t in batch.items()}


@functools.cache
def value_probes() -> tuple[Batch, ...]:
    """Probe set for the child/parent value agreement and the fingerprint.

    Cached: callers must not modify the tensors. Three batches of eight at beta 0.05, 0.1 and
    0.5, with margins |βΔ| <= ~6 so that no value or gradient of a sigmoid-type loss is tiny
    (tiny numbers make rounding unstable).
    """
    probes = []
    for index, beta in enumerate((0.05, 0.1, 0.5)):
        gen = _generator(SEED + 1 + index)
        margins = (torch.rand(8, generator=gen) * 2 - 1) * (6.0 / beta)  # (8,)
        level = -150.0 - 350.0 * torch.rand(8, generator=gen)  # (8,); keeps pc, pr < 0
        rc = level
        rr = level - 30.0 * torch.rand(8, generator=gen)
        split = torch.rand(8, generator=gen)  # share of Δ carried by the chosen side
        pc = rc + split * margins
        pr = rr - (1 - split) * margins
        probes.append(_assemble(pc, pr, rc, rr, beta=beta, gen=gen))
    return tuple(probes)
