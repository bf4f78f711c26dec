"""How trainers call a loss: the contract's inputs, and only the optional ones the loss names.

A `Loss` wraps any callable that follows the loss contract (DESIGN.md section 2): in production the
sandbox's rebuilt graph (a `torch.nn.Module`), in tests a plain function. Trainers build one
`LossInputs` per step and call `loss(inputs)`; the wrapper passes the four log-prob tensors and
beta always, and `chosen_lengths`, `rejected_lengths`, `refs_chosen_logps`, `refs_rejected_logps`
only when the loss declared them. It does not compile source code or check the loss's behaviour
(the sandbox does), and it does not reduce over the batch (trainers take the mean).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

CORE_INPUTS = (
    "policy_chosen_logps",
    "policy_rejected_logps",
    "ref_chosen_logps",
    "ref_rejected_logps",
    "beta",
)
OPTIONAL_INPUTS = frozenset(
    {"chosen_lengths", "rejected_lengths", "refs_chosen_logps", "refs_rejected_logps"}
)


@dataclass(frozen=True)
class LossInputs:
    """One batch of the contract's inputs. B = batch size, K = number of reference models."""

    policy_chosen_logps: torch.Tensor  # (B,) summed log-probs of the chosen completions
    policy_rejected_logps: torch.Tensor  # (B,)
    ref_chosen_logps: torch.Tensor  # (B,) the (combined) reference's summed log-probs
    ref_rejected_logps: torch.Tensor  # (B,)
    beta: torch.Tensor  # () KL strength, a 0-dim tensor as inside captured graphs
    chosen_lengths: torch.Tensor | None = None  # (B,) completion token counts
    rejected_lengths: torch.Tensor | None = None  # (B,)
    refs_chosen_logps: torch.Tensor | None = None  # (K, B) each reference's summed log-probs
    refs_rejected_logps: torch.Tensor | None = None  # (K, B)


@dataclass(frozen=True)
class Loss:
    """A contract loss ready for training."""

    name: str
    fn: Callable[..., torch.Tensor]
    # Which of OPTIONAL_INPUTS the loss takes; the sandbox's verdict says so for rebuilt graphs.
    optional_inputs: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        unknown = self.optional_inputs - OPTIONAL_INPUTS
        if unknown:
            raise ValueError(
                f"loss {self.name!r} names unknown inputs {sorted(unknown)}; "
                f"the optional inputs are {sorted(OPTIONAL_INPUTS)}"
            )

    def __call__(self, inputs: LossInputs) -> torch.Tensor:
        """Per-example losses, shape (B,)."""
        kwargs = {name: getattr(inputs, name) for name in CORE_INPUTS}
        for name in self.optional_inputs:
            value = getattr(inputs, name)
            if value is None:
                raise ValueError(
                    f"loss {self.name!r} needs {name!r}, which this task does not provide"
                )
            kwargs[name] = value
        return self.fn(**kwargs)


@dataclass(frozen=True)
class _ScaledBeta:
    """`fn` called with beta x `factor` (every other input as given)."""

    fn: Callable[..., torch.Tensor]
    factor: float

    def __call__(self, **kwargs: torch.Tensor) -> torch.Tensor:
        return self.fn(**{**kwargs, "beta": kwargs["beta"] * self.factor})


def at_beta(loss: Loss, factor: float) -> Loss:
    """`loss` trained at beta x `factor`: DPO's frontier grid (evaluator.frontier) trains in the
    same population as the candidates, where every loss receives the one beta of the config."""
    return Loss(
        name=f"{loss.name}@beta*{factor:g}",
        fn=_ScaledBeta(loss.fn, factor),
        optional_inputs=loss.optional_inputs,
    )
