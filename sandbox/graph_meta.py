"""Layer 4: shape-only execution of a rebuilt graph on the meta device, against size caps.

`check_on_meta(module, inputs, limits)` runs an fx graph on meta tensors (shapes and dtypes, no
memory) and refuses it, with `GraphRejectedError`, if any intermediate exceeds
`max_intermediate_elements`, their sum exceeds `max_total_elements` (both scaled to the batch
size, see `element_caps`), a Python number exceeds 2**40, an op has no shape-only
kernel or a data-dependent output shape, or the output is not floating (B,). `LossGraph` runs it
for every new input shape before computing, so no shape can make a graph allocate past the caps.

`check_cost(module, names, limits)` bounds what a step costs: the elements every intermediate
writes plus the FLOPs of matrix products, counted on the meta device (deterministic, unlike a
clock) at a small and a large batch. Growth faster than the batch (pairwise terms: an O(B²) loss
at the bandit's B ~ 1152 takes seconds a step where DPO takes a fraction of a millisecond), or a
cost far above DPO's at a training batch size, is refused with the numbers.

It does not check which ops a graph uses (graph.py does, before anything runs).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.fx
from torch.utils.flop_counter import FlopCounterMode

from sandbox.config import GraphLimits
from sandbox.errors import GraphRejectedError
from sandbox.verdict import RejectionCode

MAX_GRAPH_INT = 1 << 40  # Python ints computed from shapes stay far below this
MIN_TENSOR_CAP = 1 << 16  # element caps never go below these, whatever the batch size
MIN_PASS_CAP = 1 << 20
COST_BATCHES = (256, 4096)  # small and large B of the cost bound
MAX_GROWTH = 2.0  # cost may grow at most this many times faster than B between them
TRAINING_BATCH = 1152  # the bandit's full batch, the largest a CPU stage trains on
MAX_COST_VS_DPO = 200.0  # at TRAINING_BATCH; DPO writes ~6 (B,) tensors a step
_DPO_ELEMENTS_PER_EXAMPLE = 6  # sub, sub, sub, mul, logsigmoid, neg: one (B,) tensor each


def _reject(code: RejectionCode, reason: str) -> GraphRejectedError:
    return GraphRejectedError(code, reason)


def meta_inputs(names: Sequence[str], batch: int, num_refs: int) -> dict[str, torch.Tensor]:
    """Shape-only inputs on the meta device: (B,) log-probs, (B,) int64 lengths, (K, B) refs."""
    out: dict[str, torch.Tensor] = {}
    for name in names:
        if name == "beta":
            out[name] = torch.empty((), device="meta")
        elif name.endswith("_lengths"):
            out[name] = torch.empty(batch, dtype=torch.int64, device="meta")
        elif name.startswith("refs_"):
            out[name] = torch.empty(num_refs, batch, device="meta")
        else:
            out[name] = torch.empty(batch, device="meta")
    return out


class _MetaRun(torch.fx.Interpreter):
    """Runs a graph on meta tensors, refusing any intermediate over the element caps."""

    def __init__(self, module: torch.fx.GraphModule, caps: tuple[int, int]) -> None:
        super().__init__(module)
        self.per_tensor, self.per_pass = caps
        self.total = 0

    def fetch_attr(self, target: str) -> Any:
        value = super().fetch_attr(target)
        return value.to("meta") if isinstance(value, torch.Tensor) else value

    def run_node(self, n: torch.fx.Node) -> Any:
        result = super().run_node(n)
        if isinstance(result, int) and abs(result) > MAX_GRAPH_INT:  # graph_kinds.py: why
            raise _reject(
                RejectionCode.TENSOR_TOO_LARGE,
                f"a number computed in the graph exceeds {MAX_GRAPH_INT}; sizes come from "
                "the inputs' shapes",
            )
        tensors = (
            [result]
            if isinstance(result, torch.Tensor)
            else [r for r in result if isinstance(r, torch.Tensor)]
            if isinstance(result, tuple)
            else []
        )
        for tensor in tensors:
            self.total += tensor.numel()
            if tensor.numel() > self.per_tensor or self.total > self.per_pass:
                raise _reject(
                    RejectionCode.TENSOR_TOO_LARGE,
                    f"an intermediate of shape {tuple(tensor.shape)} exceeds the size "
                    "caps; per-example losses need O(B) memory",
                )
        return result


def element_caps(batch: int, limits: GraphLimits) -> tuple[int, int]:
    """(per intermediate, per forward pass) element caps at batch size `batch`.

    The limits are stated at `meta_batch_size` and scale with the batch (a loss needs O(B)
    memory, O(B²) at most for pairwise terms), with floors so small batches are not starved:
    at the battery's batch of 16 a graph may touch ~half a million elements, not 2**25.
    """
    scale = batch / limits.meta_batch_size
    return (
        max(MIN_TENSOR_CAP, int(limits.max_intermediate_elements * scale)),
        max(MIN_PASS_CAP, int(limits.max_total_elements * scale)),
    )


def check_on_meta(
    module: torch.fx.GraphModule, inputs: Mapping[str, torch.Tensor], limits: GraphLimits
) -> None:
    """Run `module` on meta copies of `inputs`; check sizes and the (B,) floating output."""
    meta = {n: t.to("meta") if isinstance(t, torch.Tensor) else t for n, t in inputs.items()}
    batch = meta["policy_chosen_logps"].shape[0]
    runner = _MetaRun(module, element_caps(batch, limits))
    try:
        out = runner.run(*(meta[n] for n in inputs))
    except GraphRejectedError:
        raise
    except Exception as exc:  # ops without meta kernels or data-dependent shapes
        raise _reject(
            RejectionCode.MALFORMED_GRAPH,
            f"fails shape-only (meta) execution with {type(exc).__name__}: "
            f"{' '.join(str(exc).split())[:160]}; data-dependent shapes are not "
            "allowed",
        ) from None
    if (
        not isinstance(out, torch.Tensor)
        or tuple(out.shape) != (batch,)
        or (not out.dtype.is_floating_point)
    ):
        shown = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise _reject(
            RejectionCode.BAD_OUTPUT,
            f"the graph returns {shown} for a batch of "
            f"{batch}; it must return floating per-example losses of shape (B,)",
        )


def cost(module: torch.fx.GraphModule, names: Sequence[str], batch: int, num_refs: int) -> int:
    """Elements written by every intermediate, plus matmul/conv FLOPs, of one pass at `batch`."""
    runner = _MetaRun(module, (1 << 62, 1 << 62))  # counting only: meta tensors hold no memory
    inputs = meta_inputs(names, batch, num_refs)
    with FlopCounterMode(display=False) as flops:
        runner.run(*(inputs[n] for n in names))
    return runner.total + int(flops.get_total_flops())


def check_cost(module: torch.fx.GraphModule, names: Sequence[str], limits: GraphLimits) -> None:
    """Refuse a graph whose cost grows faster than the batch, or dwarfs DPO's when training."""
    small, large = COST_BATCHES
    try:
        at_small, at_large = (cost(module, names, b, limits.meta_num_refs) for b in (small, large))
    except GraphRejectedError:
        raise
    except Exception as exc:  # shapes passed check_on_meta at one batch; report, don't crash
        raise _reject(
            RejectionCode.MALFORMED_GRAPH,
            f"fails shape-only (meta) execution at batch size {small} or {large} "
            f"({type(exc).__name__}); a loss must work at every batch size",
        ) from None
    growth = at_large / max(at_small, 1)
    if growth > MAX_GROWTH * large / small:
        raise _reject(
            RejectionCode.TOO_COSTLY,
            f"its cost grows faster than the batch: {at_small:,} elements and FLOPs a step at "
            f"B={small}, {at_large:,} at B={large} (x{growth:.0f} for x{large // small} the "
            "examples); pairwise (B, B) terms make a training step take seconds, keep it O(B)",
        )
    # Past the growth bound the cost is near-linear in B, so interpolating between the two
    # measurements estimates it at the training batch (and saves a third meta run).
    at_training = at_small + (at_large - at_small) * (TRAINING_BATCH - small) / (large - small)
    dpo = _DPO_ELEMENTS_PER_EXAMPLE * TRAINING_BATCH
    if at_training > MAX_COST_VS_DPO * dpo:
        raise _reject(
            RejectionCode.TOO_COSTLY,
            f"a step costs {at_training:,.0f} elements and FLOPs at B={TRAINING_BATCH}, "
            f"{at_training / dpo:.0f} times DPO's (the cap is {MAX_COST_VS_DPO:g} times); "
            "compute each example's loss with a few elementwise ops",
        )
