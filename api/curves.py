"""A loss and its gradient as functions of the margin beta*delta, for the candidate view's plot.

Computed from the candidate's rebuilt graph (the sandbox's allow-listed ops; `rebuild_graph`
refuses anything else), never from its source: the API process executes no candidate code.
The probe batch is the sandbox's margin batch (`probes.with_margins`): references equal, the margin
split evenly between the chosen and rejected log-ratios, lengths and K references filled in for
losses that take them. All margins go through the loss as one batch, so a loss that uses batch
statistics is drawn as it behaves on that batch.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F

from sandbox import probes
from sandbox.graph import LossGraph, rebuild_graph

BETA = 0.1
SPAN = 10.0  # the x axis runs over beta*delta in [-SPAN, SPAN]
POINTS = 201


def margin_grid() -> torch.Tensor:
    return torch.linspace(-SPAN, SPAN, POINTS, dtype=torch.float64)  # (N,)


def curve(graph_json: str, *, beta: float = BETA) -> tuple[list[float | None], list[float | None]]:
    """(loss, d loss / d margin) at each margin of `margin_grid()`; None where not finite.
    Raises the sandbox's GraphRejectedError for graph JSON it refuses."""
    graph: LossGraph = rebuild_graph(graph_json)
    graph = graph.to(torch.float64)
    margins = margin_grid()
    z = margins.clone().requires_grad_(True)  # (N,) beta * delta
    batch = probes.with_margins(torch.zeros(POINTS), beta)  # shapes and side inputs only
    inputs = {
        name: (t.to(torch.float64) if t.dtype.is_floating_point else t)
        for name, t in probes.select(batch, graph.input_names).items()
    }
    delta = z / beta
    # Rebuild the policy log-probs from z so that autograd gives d loss / d (beta * delta).
    inputs["policy_chosen_logps"] = inputs["ref_chosen_logps"] + 0.5 * delta
    inputs["policy_rejected_logps"] = inputs["ref_rejected_logps"] - 0.5 * delta
    inputs["beta"] = torch.tensor(beta, dtype=torch.float64)
    with torch.enable_grad():
        losses = graph(**inputs)  # (N,)
        if losses.requires_grad:
            (grad,) = torch.autograd.grad(losses.sum(), z, allow_unused=True)
        else:
            grad = None
    if grad is None:
        grad = torch.zeros_like(z)
    return _finite(losses.detach()), _finite(grad)


@functools.cache
def dpo_curve() -> tuple[list[float | None], list[float | None]]:
    """DPO's curve in closed form: loss -log sigmoid(z), gradient -sigmoid(-z) (DESIGN.md 8)."""
    z = margin_grid()
    return _finite(-F.logsigmoid(z)), _finite(-torch.sigmoid(-z))


def _finite(values: torch.Tensor) -> list[float | None]:
    return [v if math.isfinite(v) else None for v in values.tolist()]
