"""Layer 4: shape-only execution of a rebuilt graph on the meta device, against size caps.

`check_on_meta(module, inputs, limits)` runs an fx graph on meta tensors (shapes and dtypes, no
memory) and refuses it, with `GraphRejectedError`, if any intermediate exceeds
`max_intermediate_elements`, their sum exceeds `max_total_elements` (both scaled to the batch
size, see `element_caps`), a Python number exceeds 2**40, an op has no shape-only
kernel or a data-dependent output shape, or the output is not floating (B,). `LossGraph` runs it
for every new input shape before computing, so no shape can make a graph allocate past the caps.

It does not check which ops a graph uses (graph.py does, before anything runs).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.fx

from sandbox.config import GraphLimits
from sandbox.errors import GraphRejectedError
from sandbox.verdict import RejectionCode

MAX_GRAPH_INT = 1 << 40  # Python ints computed from shapes stay far below this
MIN_TENSOR_CAP = 1 << 16  # element caps never go below these, whatever the batch size
MIN_PASS_CAP = 1 << 20


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
