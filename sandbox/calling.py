"""Calling candidate code: its exceptions become reasons, its output is checked (layer 3).

`call_loss(fn, kwargs, context)` calls a loss and returns its per-example losses, or raises
`RejectionError` with a specific reason: an exception from candidate code is classified
(`classify_exception`: memory, a forbidden system operation, or a plain error), and the output
must be a plain `torch.Tensor` of shape (B,) and a floating dtype. `with_grad` also takes the
gradient of the summed losses w.r.t. the policy log-probs. The battery (battery.py) and the wide
checks (coverage.py) call losses only through here; it judges nothing else.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from sandbox import probes
from sandbox.contract import POLICY_INPUTS
from sandbox.errors import RejectionError
from sandbox.verdict import RejectionCode, Stage

LossFn = Callable[..., Any]

_MEMORY_MARKERS = ("can't allocate memory", "not enough memory", "out of memory")


def fail(code: RejectionCode, reason: str, stage: Stage = Stage.BATTERY) -> RejectionError:
    return RejectionError(stage, code, reason)


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__


def classify_exception(exc: BaseException, context: str) -> RejectionError:
    """Map an exception raised by candidate code to a stage, code and reason."""
    message = str(exc).lower()
    if isinstance(exc, MemoryError) or any(m in message for m in _MEMORY_MARKERS):
        return fail(
            RejectionCode.MEMORY,
            f"ran out of memory ({_short(exc)}); a loss over a "
            "batch needs kilobytes, not gigabytes",
            Stage.ISOLATION,
        )
    if isinstance(exc, OSError | ImportError):
        return fail(
            RejectionCode.FORBIDDEN_OPERATION,
            f"tried a system operation the sandbox forbids ({_short(exc)}); a loss may "
            "only compute with torch",
            Stage.ISOLATION,
        )
    return fail(
        RejectionCode.EXCEPTION,
        f"raised {_short(exc)} ({context}); fix the code so it "
        "runs on any batch of the contract's shapes",
    )


def call_loss(fn: LossFn, kwargs: dict[str, torch.Tensor], context: str) -> torch.Tensor:
    try:
        out = fn(**kwargs)
    except RejectionError:
        raise
    except Exception as exc:  # candidate code boundary: any error becomes a reason
        raise classify_exception(exc, context) from None
    return _as_losses(out, kwargs["policy_chosen_logps"].shape[0], context)


def _as_losses(out: object, batch: int, context: str) -> torch.Tensor:
    if type(out) is not torch.Tensor:
        raise fail(
            RejectionCode.NOT_A_TENSOR,
            f"returns {type(out).__name__} ({context}); return a torch tensor of "
            "per-example losses with shape (B,)",
        )
    if tuple(out.shape) != (batch,):
        hint = ", not their mean" if out.dim() == 0 else ""
        raise fail(
            RejectionCode.BAD_SHAPE,
            f"returns shape {tuple(out.shape)} for a batch of {batch}; return "
            f"per-example losses of shape (B,){hint}",
        )
    if not out.dtype.is_floating_point:
        raise fail(
            RejectionCode.BAD_DTYPE, f"returns dtype {out.dtype}; return floating-point losses"
        )
    return out


def with_grad(
    fn: LossFn,
    batch: dict[str, torch.Tensor],
    inputs: Sequence[str],
    context: str,
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Losses and d(sum of losses)/d(policy inputs); zero gradients where unused."""
    kwargs = probes.select(batch, inputs)
    leaves = [kwargs[name].requires_grad_(True) for name in POLICY_INPUTS]
    out = call_loss(fn, kwargs, context)
    if not out.requires_grad:
        return out, [torch.zeros_like(leaf) for leaf in leaves]
    try:
        grads = torch.autograd.grad(out.sum(), leaves, allow_unused=True)
    except Exception as exc:  # candidate code boundary (backward runs its graph)
        raise classify_exception(exc, f"backward, {context}") from None
    pairs = zip(grads, leaves, strict=True)
    return out.detach(), [torch.zeros_like(leaf) if g is None else g for g, leaf in pairs]


def require_finite_gradients(grads: Sequence[torch.Tensor], where: str, hint: str) -> None:
    """Raise NON_FINITE_GRAD naming the first policy input whose gradient is not finite."""
    for name, grad in zip(POLICY_INPUTS, grads, strict=True):
        if not torch.isfinite(grad).all():
            raise fail(
                RejectionCode.NON_FINITE_GRAD,
                f"gradient w.r.t. {name} is not finite {where}; {hint}",
            )
