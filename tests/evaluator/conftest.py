"""Helpers for the baseline-loss tests: compile trusted baseline source, build realistic batches.

The sandbox is what turns untrusted candidate source into a graph; until it is wired in, these
tests compile the registry's own (trusted) sources with `compile_loss`, an `exec` in a namespace
that holds only `torch`, `F` and `math` and no builtins. Library code never execs anything.
The population tests train baselines rebuilt by the sandbox, as production trainers receive them.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import pytest
import torch
import torch.nn.functional as F

from evaluator.baselines import BASELINES
from evaluator.losses import Loss
from evaluator.worker import load_loss
from sandbox import Candidate, Sandbox, SandboxConfig

LossFn = Callable[..., torch.Tensor]

CORE_PARAMETERS = (
    "policy_chosen_logps",
    "policy_rejected_logps",
    "ref_chosen_logps",
    "ref_rejected_logps",
    "beta",
)
OPTIONAL_PARAMETERS = frozenset(
    {"chosen_lengths", "rejected_lengths", "refs_chosen_logps", "refs_rejected_logps"}
)


def compile_loss(source: str) -> LossFn:
    """The `loss` function a trusted contract source defines (exactly one def, named `loss`)."""
    body = ast.parse(source).body
    if len(body) != 1 or not isinstance(body[0], ast.FunctionDef) or body[0].name != "loss":
        raise ValueError("a contract source defines exactly one function, `loss`, and nothing else")
    namespace: dict[str, object] = {"torch": torch, "F": F, "math": math, "__builtins__": {}}
    exec(compile(source, "<baseline>", "exec"), namespace)
    return namespace["loss"]  # type: ignore[return-value]


@dataclass(frozen=True)
class PreferenceBatch:
    """Every input a contract loss may name. B = batch size, K = number of references."""

    policy_chosen_logps: torch.Tensor  # (B,) summed log-probs, <= 0
    policy_rejected_logps: torch.Tensor  # (B,)
    ref_chosen_logps: torch.Tensor  # (B,)
    ref_rejected_logps: torch.Tensor  # (B,)
    chosen_lengths: torch.Tensor  # (B,) int64 completion token counts
    rejected_lengths: torch.Tensor  # (B,) int64
    refs_chosen_logps: torch.Tensor  # (K, B); row 0 is ref_chosen_logps (the primary reference)
    refs_rejected_logps: torch.Tensor  # (K, B)

    @property
    def size(self) -> int:
        return self.policy_chosen_logps.shape[0]

    def with_policy(self, chosen: torch.Tensor, rejected: torch.Tensor) -> PreferenceBatch:
        return replace(self, policy_chosen_logps=chosen, policy_rejected_logps=rejected)

    def kwargs(self, parameters: tuple[str, ...]) -> dict[str, torch.Tensor]:
        """The tensors a loss with these parameter names receives (optional ones only if named)."""
        unknown = set(parameters) - set(CORE_PARAMETERS) - OPTIONAL_PARAMETERS
        if unknown:
            raise ValueError(f"unknown loss parameters {sorted(unknown)}")
        return {name: getattr(self, name) for name in parameters if name != "beta"}


def make_batch(
    batch_size: int,
    *,
    seed: int,
    dtype: torch.dtype = torch.float64,
    num_refs: int = 3,
    policy_drift: float = 3.0,
) -> PreferenceBatch:
    """A realistic batch: summed log-probs in -200..0, the policy within `policy_drift` nats of
    the reference, completion lengths 1..64, extra references within a few nats of the first."""
    g = torch.Generator().manual_seed(seed)

    def uniform(low: float, high: float, *shape: int) -> torch.Tensor:
        return low + (high - low) * torch.rand(*shape, generator=g, dtype=dtype)

    ref_chosen = uniform(-200.0, -5.0, batch_size)
    ref_rejected = uniform(-200.0, -5.0, batch_size)
    policy_chosen = ref_chosen + uniform(-policy_drift, policy_drift, batch_size)
    policy_rejected = ref_rejected + uniform(-policy_drift, policy_drift, batch_size)
    extra_chosen = ref_chosen + uniform(-4.0, 4.0, num_refs - 1, batch_size)
    extra_rejected = ref_rejected + uniform(-4.0, 4.0, num_refs - 1, batch_size)
    return PreferenceBatch(
        policy_chosen_logps=policy_chosen,
        policy_rejected_logps=policy_rejected,
        ref_chosen_logps=ref_chosen,
        ref_rejected_logps=ref_rejected,
        chosen_lengths=torch.randint(1, 65, (batch_size,), generator=g),
        rejected_lengths=torch.randint(1, 65, (batch_size,), generator=g),
        refs_chosen_logps=torch.cat([ref_chosen[None], extra_chosen]),
        refs_rejected_logps=torch.cat([ref_rejected[None], extra_rejected]),
    )


def call_loss(
    fn: LossFn, parameters: tuple[str, ...], batch: PreferenceBatch, beta: float | torch.Tensor
) -> torch.Tensor:
    """Per-example losses (B,) of `fn` on `batch`, passing only the inputs the loss names."""
    return fn(beta=beta, **batch.kwargs(parameters))


@pytest.fixture(scope="session")
def compiled_baselines() -> dict[str, LossFn]:
    """Every registry baseline, compiled once per session."""
    return {name: compile_loss(baseline.source) for name, baseline in BASELINES.items()}


# The baselines the population tests train, as the sandbox validates and rebuilds them (the
# production path: trainers only run rebuilt graphs). Smooth losses whose sequential runs are
# reproducible to well under 1e-4 (see test_population.py), plus hinge, whose kink is not.
POPULATION_BASELINES = ("dpo", "ipo", "padll", "bco_pair", "hinge")


@pytest.fixture(scope="session")
def baseline_graphs() -> dict[str, str]:
    """name -> graph JSON of the baselines in POPULATION_BASELINES, validated once per session."""
    graphs = {}
    with Sandbox(SandboxConfig(pool_size=1)) as sandbox:
        for name in POPULATION_BASELINES:
            verdict = sandbox.validate(Candidate(name, "", BASELINES[name].source))
            assert verdict.accepted, verdict.reason
            graphs[name] = verdict.graph_json
    return graphs


@pytest.fixture(scope="session")
def rebuilt_baselines(baseline_graphs: dict[str, str]) -> dict[str, Loss]:
    """name -> the rebuilt graph of each baseline in POPULATION_BASELINES, as a trainer's Loss."""
    return {name: load_loss(name, graph) for name, graph in baseline_graphs.items()}
