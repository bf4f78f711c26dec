"""The lean loop and TRL 1.16's DPOTrainer take the same steps on the same batch."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from evaluator.tinylm.reference import Reference
from evaluator.tinylm.trl_compare import StepSettings, lean_losses, trl_losses
from tests.evaluator.plain_losses import DPO

from .factories import small_pairs


def test_hub_is_offline() -> None:
    from huggingface_hub import constants

    assert constants.HF_HUB_OFFLINE


# TRL 1.16 itself still calls transformers' deprecated `is_gradient_checkpointing`.
@pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning")
@pytest.mark.parametrize("task", ["arithmetic", "sorting", "sentiment"])
def test_per_step_losses_agree_with_trl(
    reference: Callable[[str], Reference], task: str, tmp_path: Path
) -> None:
    ref = reference(task)
    pairs = small_pairs(ref, 32)
    settings = StepSettings(max_steps=5)
    lean, _ = lean_losses(ref.model, pairs, DPO, settings)
    trl, _ = trl_losses(ref.model, ref.tokenizer, pairs, settings, tmp_path)
    assert len(lean) == len(trl) == 5
    assert lean[-1] < lean[0]  # the steps did something
    for ours, theirs in zip(lean, trl, strict=True):
        assert ours == pytest.approx(theirs, rel=1e-4)
