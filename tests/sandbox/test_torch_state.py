"""torch_state.py: detecting changes to torch's modules and global settings (restored after)."""

from __future__ import annotations

import pytest
import torch

from sandbox import RejectionCode, RejectionError, torch_state


def test_unchanged_state_passes() -> None:
    torch_state.compare(torch_state.snapshot())


def test_replaced_function_is_a_monkeypatch() -> None:
    before = torch_state.snapshot()
    original = torch.sigmoid
    torch.sigmoid = lambda x: x  # type: ignore[assignment]
    try:
        with pytest.raises(RejectionError) as info:
            torch_state.compare(before)
    finally:
        torch.sigmoid = original
    assert info.value.code is RejectionCode.MONKEYPATCH and "torch.sigmoid" in info.value.reason


@pytest.mark.parametrize(
    ("change", "undo", "fragment"),
    [
        (
            lambda: torch.set_default_dtype(torch.float64),
            lambda: torch.set_default_dtype(torch.float32),
            "default dtype",
        ),
        (lambda: torch.set_grad_enabled(False), lambda: torch.set_grad_enabled(True), "grad mode"),
        (lambda: torch.rand(1), lambda: None, "random generator"),
    ],
)
def test_global_settings(change, undo, fragment) -> None:  # type: ignore[no-untyped-def]
    before = torch_state.snapshot()
    state = torch.random.get_rng_state()
    change()
    try:
        with pytest.raises(RejectionError) as info:
            torch_state.compare(before)
    finally:
        undo()
        torch.random.set_rng_state(state)
    assert info.value.code is RejectionCode.GLOBAL_STATE and fragment in info.value.reason
