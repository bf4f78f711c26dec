"""A loss and its gradient as functions of the margin beta*delta, for the candidate view's plot.

Computed from the candidate's rebuilt graph (the sandbox's allow-listed ops; `rebuild_graph`
refuses anything else), never from its source: the API process executes no candidate code.
The probe batch is the sandbox's margin batch (`probes.with_margins`): references equal, the margin
split evenly between the chosen and rejected log-ratios, lengths and K references filled in for
losses that take them. All margins go through the loss as one batch, so a loss that uses batch
statistics is drawn as it behaves on that batch.

`candidate_curve` is what the API serves: the candidate's curve beside DPO's, as plain lists, or
CurveError saying why there is none. It does not read the archive or serve HTTP.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from discovery.archive import CandidateRecord
from sandbox import probes
from sandbox.errors import GraphRejectedError
from sandbox.graph import LossGraph, rebuild_graph

BETA = 0.1
SPAN = 10.0  # the x axis runs over beta*delta in [-SPAN, SPAN]
POINTS = 201


class CurveError(ValueError):
    """A candidate without a curve: it has no validated graph, or this sandbox refuses the stored
    one; the message says which."""


@dataclass(frozen=True)
class LossCurve:
    beta: float
    margin: list[float]  # (N,) the x axis: beta*delta
    loss: list[float | None]  # (N,) the candidate's loss; None where not finite
    grad: list[float | None]  # (N,) d loss / d margin
    dpo_loss: list[float | None]  # (N,) DPO's, in closed form
    dpo_grad: list[float | None]


def candidate_curve(candidate: CandidateRecord, *, beta: float = BETA) -> LossCurve:
    """The candidate's loss and gradient vs the margin, next to DPO's; CurveError when it has no
    validated graph or its stored graph is refused."""
    try:
        graph = candidate.graph_json
    except ValueError as exc:  # a stored graph without its JSON text; the archive says why
        raise CurveError(str(exc)) from None
    if graph is None:
        raise CurveError(
            f"candidate {candidate.id} is {candidate.status}: it has no validated loss graph"
        )
    try:
        loss, grad = curve(graph, beta=beta)
    except GraphRejectedError as exc:
        raise CurveError(f"its graph is refused: {exc}") from None
    dpo_loss, dpo_grad = dpo_curve()  # in the margin z, the same for every beta
    return LossCurve(
        beta=beta,
        margin=margin_grid().tolist(),
        loss=loss,
        grad=grad,
        dpo_loss=dpo_loss,
        dpo_grad=dpo_grad,
    )


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
