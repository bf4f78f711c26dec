"""Layer 5: a fingerprint of what a loss computes, so two spellings of one loss are one candidate.

`fingerprint(graph)` runs a rebuilt graph in float64 on the fixed probe set of probes.py (three
batches of eight, beta 0.05 / 0.1 / 0.5, every optional input supplied), takes the per-example
losses and their gradients w.r.t. policy_chosen_logps and policy_rejected_logps, rounds each
number to 7 significant digits (|x| < 1e-9 counts as 0) and hashes the text with SHA-256.
`probe_values(graph)` gives those inputs and numbers as plain Python data (what an exported loss
module embeds to check itself) and `digest(values)` hashes them; `fingerprint` is the two in turn.

float64 is what makes this work: algebraically equal spellings (`-F.logsigmoid(z)`,
`F.softplus(-z)`, `torch.log1p(torch.exp(-z))`) agree to ~1e-15 there, far below the rounding
step, whereas in float32 they differ by a few ulps and would straddle rounding boundaries. The
probe margins keep |β·Δ| <= 6, so no value of a sigmoid-type loss is tiny. Graphs that cast to
float32 internally lose that margin (rare; documented as a limit).

The hash is exact, so it is only a first look. Duplicates are judged by behaviour:
`behaviour(graph, seed)` is the direction of the loss's policy gradients on batches of several
sizes, betas and reference counts (float64), each batch's gradient scaled to unit length. Adam
cannot tell a loss from a positive multiple of it (and a constant added to a loss changes no
gradient), so these are one loss; `distance` between two behaviours is 0 for them and grows with
any real difference. Two losses within `NEAR_DUPLICATE` of each other on the fixed settings are
then compared again on settings drawn from a fresh seed (`Sandbox.same_behaviour`), so a loss
that matches another only where the probes look cannot take its place.

It fingerprints only rebuilt graphs (never candidate source) and decides nothing about validity.
"""

from __future__ import annotations

import copy
import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch

from sandbox import coverage, probes
from sandbox.contract import POLICY_INPUTS
from sandbox.graph import LossGraph

FINGERPRINT_VERSION = "lossforge-fingerprint/1"
ZERO_BELOW = 1e-9  # |x| below this rounds to "0"
NEAR_DUPLICATE = 1e-3  # behaviours closer than this (out of 2) are one loss
_F64 = torch.float64
# Where behaviour is compared: small and training-sized batches, betas across the range, 1-5 refs.
BEHAVIOUR_SETTINGS: tuple[coverage.Setting, ...] = (
    coverage.Setting(8, 0.1, _F64, 3, 512),
    coverage.Setting(32, 0.05, _F64, 1, 64),
    coverage.Setting(64, 0.5, _F64, 5, 4096),
    coverage.Setting(256, 2.0, _F64, 2, 16),
    coverage.Setting(1152, 0.01, _F64, 4, 1024),
)


@dataclass(frozen=True)
class ProbeValues:
    """One probe batch and what a loss computes on it, as plain Python numbers.

    `inputs` holds only the inputs the loss takes, as the fingerprint feeds them: floats are the
    float64 values (beta a float, log-probs lists of B floats, `refs_*` K lists of B floats),
    `*_lengths` lists of B ints. `losses` and the two gradients of their sum w.r.t. the policy
    inputs are lists of B floats (zeros where the loss does not depend on that input).
    """

    inputs: dict[str, Any]
    losses: list[float]  # (B,)
    grad_policy_chosen_logps: list[float]  # (B,)
    grad_policy_rejected_logps: list[float]  # (B,)

    def rows(self) -> list[tuple[float, float, float]]:
        """(loss, d/dpc, d/dpr) per example: the numbers the fingerprint hashes."""
        return list(
            zip(
                self.losses,
                self.grad_policy_chosen_logps,
                self.grad_policy_rejected_logps,
                strict=True,
            )
        )


def quantize(value: float) -> str:
    """A number as the fingerprint hashes it: 7 significant digits, tiny values as "0"."""
    if not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if abs(value) < ZERO_BELOW:
        return "0"
    return f"{value:.6e}"


def probe_values(graph: LossGraph) -> list[ProbeValues]:
    """Run `graph` in float64 on each batch of `probes.value_probes()`; inputs and results."""
    model = copy.deepcopy(graph).to(torch.float64)
    out = []
    for batch in probes.value_probes():
        kwargs = {
            name: (t.to(torch.float64) if t.dtype.is_floating_point else t.clone())
            for name, t in probes.select(batch, graph.input_names).items()
        }
        inputs = {name: t.tolist() for name, t in kwargs.items()}  # before any leaf is marked
        leaves = [kwargs[name].requires_grad_(True) for name in POLICY_INPUTS]
        losses = model(**kwargs)
        if losses.requires_grad:
            grads = torch.autograd.grad(losses.sum(), leaves, allow_unused=True)
        else:
            grads = (None, None)
        pc, pr = (
            torch.zeros_like(leaf) if g is None else g
            for g, leaf in zip(grads, leaves, strict=True)
        )
        out.append(
            ProbeValues(
                inputs=inputs,
                losses=_floats(losses.detach()),
                grad_policy_chosen_logps=_floats(pc),
                grad_policy_rejected_logps=_floats(pr),
            )
        )
    return out


def _floats(values: torch.Tensor) -> list[float]:
    # float64 holds every float32 and every integer a loss could return exactly, so these are the
    # numbers the fingerprint always hashed.
    return [float(v) for v in values.to(torch.float64).tolist()]


def digest(values: Sequence[ProbeValues]) -> str:
    """Hex digest (32 characters) of the rounded losses and gradients, batch by batch."""
    lines = [FINGERPRINT_VERSION]
    for batch in values:
        lines.extend(" ".join(quantize(v) for v in row) for row in batch.rows())
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:32]


def fingerprint(graph: LossGraph) -> str:
    """Hex digest (32 characters) of rounded values and policy gradients on the probe set."""
    return digest(probe_values(graph))


def behaviour(graph: LossGraph, seed: int = probes.SEED) -> torch.Tensor:
    """Unit-length policy gradients per setting, concatenated and scaled to unit length, (N,).

    `seed` picks the batches: the fixed seed for the archive's first look, a fresh one to confirm.
    """
    model = copy.deepcopy(graph).to(_F64)
    parts = []
    settings = BEHAVIOUR_SETTINGS
    if seed != probes.SEED:  # only drawn settings: a confirmation must not look where the
        # first look did. Batches of 4 or more: every accepted loss is defined there.
        settings = tuple(replace(s, batch=max(s.batch, 4)) for s in coverage.drawn_settings(seed))
    for index, s in enumerate(settings):
        batch, _ = coverage.setting_batch(s, seed + index)
        kwargs = probes.select(batch, graph.input_names)
        leaves = [kwargs[name].requires_grad_(True) for name in POLICY_INPUTS]
        out = model(**kwargs)
        grads = torch.autograd.grad(out.sum(), leaves, allow_unused=True)
        flat = torch.cat(
            [
                torch.zeros_like(leaf) if g is None else g
                for g, leaf in zip(grads, leaves, strict=True)
            ]
        )  # (2B,)
        norm = flat.norm()
        parts.append(flat / norm if norm > 0 else flat)
    return torch.cat(parts) / len(parts) ** 0.5


def distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """How far apart two behaviours are: 0 for one loss (or a positive multiple), at most 2."""
    if a.shape != b.shape:
        return 2.0
    value = float((a - b).norm())
    return value if math.isfinite(value) else 2.0
