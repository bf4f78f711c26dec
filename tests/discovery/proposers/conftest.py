"""Fixtures for the proposer tests: one real sandbox for the package, contexts built from seeds.

The sandbox takes a few seconds to start (a warm worker pool), so all proposer tests share one.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from discovery.proposers import Parent, ProposalContext
from discovery.proposers.evolve.expr import encode_genome
from discovery.proposers.evolve.seeds import SEED_TREES
from sandbox import Sandbox, SandboxConfig

# Generous: a loaded 2-core machine must never turn an honest candidate into a timeout.
SANDBOX_TIMEOUT_S = 60.0


@pytest.fixture(scope="package")
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(SandboxConfig(timeout_s=SANDBOX_TIMEOUT_S)) as box:
        yield box


def seeded_context(*, with_genomes: bool = True) -> ProposalContext:
    """Eight seed trees as ranked parents, the other seeds as inspirations."""
    items = list(SEED_TREES.items())
    parents = tuple(
        Parent(
            id=i + 1,
            name=name,
            code="",
            score=1.0 - 0.1 * i,
            genome=encode_genome(tree) if with_genomes else None,
            island=0,
        )
        for i, (name, tree) in enumerate(items[:8])
    )
    inspirations = tuple(
        Parent(
            id=100 + i,
            name=name,
            code="",
            score=None,
            genome=encode_genome(tree) if with_genomes else None,
            island=1,
        )
        for i, (name, tree) in enumerate(items[8:])
    )
    return ProposalContext(parents, inspirations, (), 0, "bandit/score_vs_dpo")


COLD_CONTEXT = ProposalContext((), (), (), None, "bandit/score_vs_dpo")


def compile_trusted(source: str) -> Callable[..., Any]:
    """Run source written by this repository (baselines, codegen output) in a plain namespace.

    Only for tests: it is code we wrote, never candidate code from elsewhere.
    """
    namespace: dict[str, Any] = {"torch": torch, "F": F, "math": math}
    exec(compile(source, "<trusted>", "exec"), namespace)
    return namespace["loss"]


def realistic_inputs(batch: int, beta: float, seed: int) -> dict[str, Any]:
    """Summed log-probs in -200..0, the policy within 20 nats of the reference."""
    gen = torch.Generator().manual_seed(seed)
    rc = -200.0 * torch.rand(batch, generator=gen)
    rr = -200.0 * torch.rand(batch, generator=gen)
    return {
        "policy_chosen_logps": rc + 40.0 * (torch.rand(batch, generator=gen) - 0.5),
        "policy_rejected_logps": rr + 40.0 * (torch.rand(batch, generator=gen) - 0.5),
        "ref_chosen_logps": rc,
        "ref_rejected_logps": rr,
        "beta": torch.tensor(beta),
        "chosen_lengths": torch.randint(0, 300, (batch,), generator=gen),
        "rejected_lengths": torch.randint(0, 300, (batch,), generator=gen),
    }


def call_with(fn: Callable[..., Any], inputs: dict[str, Any]) -> torch.Tensor:
    """Call a contract function with the arguments it names."""
    names = fn.__code__.co_varnames[: fn.__code__.co_argcount]
    return fn(**{name: inputs[name] for name in names})
