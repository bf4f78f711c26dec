"""Small data for the tinylm tests."""

from __future__ import annotations

import numpy as np
import torch

from evaluator.tinylm.pairs import PairSet, build_pairs
from evaluator.tinylm.reference import Reference


def small_pairs(
    reference: Reference, n: int, *, seed: int = 0, label_noise: float = 0.0
) -> PairSet:
    """n train pairs sampled from `reference` with `seed`."""
    return build_pairs(
        reference,
        n_pairs=n,
        split="train",
        label_noise=label_noise,
        max_length=32,
        rng=np.random.default_rng(seed),
        generator=torch.Generator().manual_seed(seed),
    )
