"""Detect candidate code that changes process-wide torch state (runs in the child).

`snapshot()` records the identity of every public attribute of `torch`, `torch.nn.functional`,
`torch.special`, `torch.Tensor` and `math`, plus torch's global settings (default dtype and
device, grad mode, thread counts, determinism, anomaly mode, matmul precision, the CPU random
generator's state). `compare(before)` raises `RejectionError` naming the first difference:
MONKEYPATCH for a replaced or added attribute, GLOBAL_STATE for a changed setting.

This is a diagnostic, not a barrier: the child is discarded after one candidate, so a change can
never reach another candidate or the parent, and a determined attacker can disable this check
from inside the child. What it gives is a precise reason for code that would corrupt a trainer's
process if it were ever run there. The parent's own checks never rely on it.
"""

from __future__ import annotations

import hashlib
import math
import types
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from sandbox.errors import RejectionError
from sandbox.verdict import RejectionCode, Stage

_WATCHED: tuple[tuple[str, Any], ...] = (
    ("torch", torch),
    ("F", F),
    ("torch.special", torch.special),
    ("torch.Tensor", torch.Tensor),
    ("math", math),
)


def _settings() -> dict[str, object]:
    return {
        "default dtype": torch.get_default_dtype(),
        "default device": str(torch.get_default_device()),
        "grad mode": torch.is_grad_enabled(),
        "inference mode": torch.is_inference_mode_enabled(),
        "intra-op threads": torch.get_num_threads(),
        "deterministic algorithms": torch.are_deterministic_algorithms_enabled(),
        "anomaly detection": torch.is_anomaly_enabled(),
        "float32 matmul precision": torch.get_float32_matmul_precision(),
        "random generator state": hashlib.sha256(
            torch.random.get_rng_state().numpy().tobytes()
        ).hexdigest(),
        "mkldnn enabled": torch.backends.mkldnn.enabled,
    }


@dataclass(frozen=True)
class StateSnapshot:
    attributes: dict[str, dict[str, object]]  # module label -> attribute name -> value (held)
    settings: dict[str, object]


def snapshot() -> StateSnapshot:
    # Holding the values (not their ids) keeps them alive, so a replacement cannot reuse an id.
    attributes = {label: dict(vars(obj)) for label, obj in _WATCHED}
    return StateSnapshot(attributes, _settings())


def compare(before: StateSnapshot) -> None:
    """Raise `RejectionError` if torch's settings or modules differ from `before`.

    Settings first: some setters also swap module attributes (set_default_dtype rebinds
    torch.Storage), and the setting is the more useful reason.
    """
    settings = _settings()
    for key, value in before.settings.items():
        if settings[key] != value:
            hint = (
                "a loss must be deterministic: draw no random numbers, set no seed"
                if key == "random generator state"
                else "a loss must be pure"
            )
            change = "" if key == "random generator state" else f" ({value} -> {settings[key]})"
            raise RejectionError(
                Stage.BATTERY,
                RejectionCode.GLOBAL_STATE,
                f"changes torch's global {key}{change}; {hint}",
            )
    for label, obj in _WATCHED:
        old = before.attributes[label]
        now = vars(obj)
        missing = object()
        for name in sorted(set(old) | set(now)):
            value = now.get(name, missing)
            if name not in old and isinstance(value, types.ModuleType):
                continue  # torch imports submodules lazily (torch._dynamo on first trace)
            if old.get(name, missing) is not value:
                raise RejectionError(
                    Stage.BATTERY,
                    RejectionCode.MONKEYPATCH,
                    f"modifies {label}.{name}; a loss must not replace, add or "
                    "delete library attributes",
                )
