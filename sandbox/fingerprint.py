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

It fingerprints only rebuilt graphs (never candidate source) and decides nothing about validity.
"""

from __future__ import annotations

import copy
import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from sandbox import probes
from sandbox.contract import POLICY_INPUTS
from sandbox.graph import LossGraph

FINGERPRINT_VERSION = "lossforge-fingerprint/1"
ZERO_BELOW = 1e-9  # |x| below this rounds to "0"


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
