"""Seed trees: the baselines of evaluator/baselines.py, as expression trees."""

from __future__ import annotations

import pytest
import torch

from discovery.proposers.evolve.codegen import to_source
from discovery.proposers.evolve.evaluate import evaluate
from discovery.proposers.evolve.expr import structural_problem
from discovery.proposers.evolve.sanity import sanity_problem
from discovery.proposers.evolve.seeds import EXACT_SEEDS, SEED_TREES
from evaluator.baselines import BASELINES
from sandbox import Candidate, Sandbox
from tests.discovery.proposers.conftest import call_with, compile_trusted, realistic_inputs

REQUIRED_SEEDS = (
    "dpo",
    "hinge",
    "ipo",
    "sppo_hard",
    "lrml",
    "cell",
    "padll",
    "apo_zero",
    "bco_pair",
    "nca_pair",
)


def test_the_required_baselines_are_seeded() -> None:
    assert set(REQUIRED_SEEDS) <= set(SEED_TREES)
    assert set(SEED_TREES) <= set(BASELINES)


@pytest.mark.parametrize("name", sorted(SEED_TREES))
def test_seed_matches_its_baseline(name: str) -> None:
    baseline = compile_trusted(BASELINES[name].source)
    seed = compile_trusted(to_source(SEED_TREES[name]))
    for index, beta in enumerate((0.05, 0.1, 0.5, 1.0)):
        inputs = realistic_inputs(64, beta, seed=index)
        expected = call_with(baseline, inputs)
        actual = call_with(seed, inputs)
        if name in EXACT_SEEDS:
            torch.testing.assert_close(actual, expected, rtol=1e-6, atol=1e-6)
        else:  # dbaql: Var as std², equal up to rounding
            torch.testing.assert_close(actual, expected, rtol=1e-4, atol=1e-5)
        # The torch evaluator (the proposer's screen) agrees with the generated code.
        torch.testing.assert_close(evaluate(SEED_TREES[name], inputs), actual, rtol=0, atol=0)


@pytest.mark.parametrize("name", sorted(SEED_TREES))
def test_seed_is_well_formed_and_passes_the_screen(name: str) -> None:
    tree = SEED_TREES[name]
    assert structural_problem(tree, max_nodes=48, max_depth=20) is None
    assert sanity_problem(tree) is None


def test_every_seed_is_accepted_by_the_sandbox(sandbox: Sandbox) -> None:
    verdicts = {
        name: sandbox.validate(Candidate(name, "seed", to_source(tree)))
        for name, tree in SEED_TREES.items()
    }
    rejected = {name: v.summary() for name, v in verdicts.items() if not v.accepted}
    assert not rejected
    # Exact seeds are the same loss as their baseline: equal fingerprints.
    for name in sorted(EXACT_SEEDS):
        baseline = sandbox.validate(Candidate(name, "baseline", BASELINES[name].source))
        assert baseline.fingerprint == verdicts[name].fingerprint, name
