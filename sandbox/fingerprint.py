"""Layer 5: a fingerprint of what a loss computes, so two spellings of one loss are one candidate.

`fingerprint(graph)` runs a rebuilt graph in float64 on the fixed probe set of probes.py (three
batches of eight, beta 0.05 / 0.1 / 0.5, every optional input supplied), takes the per-example
losses and their gradients w.r.t. policy_chosen_logps and policy_rejected_logps, rounds each
number to 7 significant digits (|x| < 1e-9 counts as 0) and hashes the text with SHA-256.

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

import torch

from sandbox import probes
from sandbox.contract import POLICY_INPUTS
from sandbox.graph import LossGraph

FINGERPRINT_VERSION = "lossforge-fingerprint/1"
_ZERO_BELOW = 1e-9


def _quantize(value: float) -> str:
    if not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if abs(value) < _ZERO_BELOW:
        return "0"
    return f"{value:.6e}"


def fingerprint(graph: LossGraph) -> str:
    """Hex digest (32 characters) of rounded values and policy gradients on the probe set."""
    model = copy.deepcopy(graph).to(torch.float64)
    lines = [FINGERPRINT_VERSION]
    for batch in probes.value_probes():
        kwargs = {
            name: (t.to(torch.float64) if t.dtype.is_floating_point else t.clone())
            for name, t in probes.select(batch, graph.input_names).items()
        }
        leaves = [kwargs[name].requires_grad_(True) for name in POLICY_INPUTS]
        losses = model(**kwargs)
        if losses.requires_grad:
            grads = torch.autograd.grad(losses.sum(), leaves, allow_unused=True)
        else:
            grads = (None, None)
        columns = [losses.detach()] + [
            torch.zeros_like(leaf) if g is None else g
            for g, leaf in zip(grads, leaves, strict=True)
        ]
        for row in torch.stack(columns, dim=1).tolist():  # (B, 3): loss, d/dpc, d/dpr
            lines.append(" ".join(_quantize(v) for v in row))
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:32]
