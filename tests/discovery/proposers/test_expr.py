"""The expression language: JSON, canonical form, typing rules, simplifier, code generation."""

from __future__ import annotations

import ast
import json

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from discovery.proposers import GenomeError
from discovery.proposers.evolve.codegen import describe, to_source
from discovery.proposers.evolve.evaluate import evaluate
from discovery.proposers.evolve.expr import (
    ARITY,
    CONST,
    LEAVES,
    Node,
    call,
    canonical,
    const,
    dag_size,
    decode_genome,
    depth,
    encode_genome,
    from_json,
    leaf,
    simplify,
    size,
    structural_problem,
    to_json,
)
from discovery.proposers.evolve.operators import Space, random_tree
from discovery.proposers.evolve.seeds import SEED_TREES
from sandbox import SandboxConfig
from sandbox.contract import REQUIRED_INPUTS
from sandbox.static import check
from tests.discovery.proposers.conftest import call_with, compile_trusted, realistic_inputs

MAX_BYTES = SandboxConfig().max_source_bytes
BETA, DELTA, S_C, S_R = leaf("beta"), leaf("delta"), leaf("s_c"), leaf("s_r")

_OPS = [op for op, arity in ARITY.items() if arity > 0]
_leaves = st.one_of(
    st.sampled_from(LEAVES).map(leaf),
    st.floats(-100, 100, allow_nan=False).map(const),
)
# Arbitrary trees, well typed or not: code generation and JSON must cope with every one.
any_tree = st.recursive(
    _leaves,
    lambda children: st.sampled_from(_OPS).flatmap(
        lambda op: st.lists(children, min_size=ARITY[op], max_size=ARITY[op]).map(
            lambda args, op=op: Node(op, tuple(args))
        )
    ),
    max_leaves=24,
)


def test_json_round_trip_of_every_seed() -> None:
    for name, tree in SEED_TREES.items():
        text = json.dumps(encode_genome(tree))
        assert decode_genome(json.loads(text)) == tree, name


def test_canonical_form_equal_for_equal_trees_and_commutative_spellings() -> None:
    a = -call("logsigmoid", BETA * DELTA)
    b = -call("logsigmoid", BETA * DELTA)
    assert a == b and canonical(a) == canonical(b) and hash(a) == hash(b)
    assert canonical(DELTA + S_C) == canonical(S_C + DELTA)
    assert canonical(DELTA * 2.0) == canonical(2.0 * DELTA)
    assert canonical(DELTA - S_C) != canonical(S_C - DELTA)
    assert canonical(const(0.0)) == canonical(const(-0.0))


def test_size_depth_and_dag_size() -> None:
    z = BETA * DELTA
    lrml_like = call("sigmoid", z) * z
    assert size(z) == 3 and depth(z) == 2
    assert size(lrml_like) == 8 and dag_size(lrml_like) == 5  # z counted once


@pytest.mark.parametrize(
    "bad",
    [
        ["nope", "delta"],
        ["add", "delta"],
        ["relu", "delta", "s_c"],
        "x",
        True,
        {"op": "add"},
        ["const", 1.0],
        [],
    ],
)
def test_malformed_json_raises_genome_error(bad: object) -> None:
    with pytest.raises(GenomeError):
        from_json(bad)


def test_genome_needs_its_format_and_deep_nesting_is_refused() -> None:
    with pytest.raises(GenomeError):
        decode_genome({"tree": "delta"})
    deep: object = "delta"
    for _ in range(200):
        deep = ["neg", deep]
    with pytest.raises(GenomeError):
        from_json(deep)
    with pytest.raises(GenomeError):
        const(float("inf"))


@pytest.mark.parametrize(
    ("tree", "fragment"),
    [
        (BETA * 2.0, "vary per example"),
        (call("mean", DELTA), "vary per example"),
        (DELTA + call("sigmoid", BETA), "scalar"),
        (DELTA + call("mean", call("mean", DELTA)), "batch mean"),
        (call("log1p", DELTA), "log1p"),
        (DELTA / (BETA - 0.5), "divides"),
        (call("where", BETA, DELTA, S_C), "branches"),
    ],
)
def test_structural_rules(tree: Node, fragment: str) -> None:
    problem = structural_problem(tree, max_nodes=48, max_depth=20)
    assert problem is not None and fragment in problem


def test_structural_caps_and_valid_trees() -> None:
    assert structural_problem(DELTA / S_C, max_nodes=48, max_depth=20) is None
    assert structural_problem(call("log1p", call("exp", DELTA)), max_nodes=48, max_depth=20) is None
    assert "nodes" in (structural_problem(DELTA + S_C, max_nodes=2, max_depth=20) or "")
    assert "deep" in (structural_problem(call("neg", -DELTA), max_nodes=48, max_depth=2) or "")


def test_simplifier() -> None:
    assert simplify(const(2.0) * const(3.0) + DELTA) == const(6.0) + DELTA
    assert simplify(call("neg", -DELTA)) == DELTA
    assert simplify(DELTA * 1.0 + 0.0) == DELTA
    assert simplify(DELTA - DELTA) == const(0.0)
    assert simplify(call("where", S_C, DELTA, DELTA)) == DELTA
    for name, tree in SEED_TREES.items():
        assert simplify(tree) == tree, name  # seeds are already in simplest form


def test_codegen_defines_only_what_it_uses() -> None:
    source = to_source(call("relu", 1.0 - BETA * S_C))
    assert "rejected_logratios" not in source and "delta" not in source
    assert "chosen_lengths" not in source
    func = ast.parse(source).body[0]
    assert isinstance(func, ast.FunctionDef)
    assert tuple(a.arg for a in func.args.args) == REQUIRED_INPUTS
    ipo = ast.parse(to_source(SEED_TREES["ipo"])).body[0]
    assert isinstance(ipo, ast.FunctionDef)
    assert [a.arg for a in ipo.args.args][-2:] == ["chosen_lengths", "rejected_lengths"]
    only_rejected = to_source(call("logsigmoid", -leaf("s_r_avg")) + DELTA)
    assert "rejected_lengths" in only_rejected and "chosen_lengths" not in only_rejected


def test_codegen_computes_shared_subtrees_once_and_guards_exp_and_division() -> None:
    z = BETA * DELTA
    source = to_source(call("sigmoid", z) * call("exp", -z) / call("tanh", S_C))
    assert source.count("beta * delta") == 1  # hoisted into `logits`
    assert "torch.clamp(-logits, max=50.0)" in source
    assert "torch.where(" in source  # sign-preserving guard of the tensor denominator
    assert describe(z) == "beta*delta"
    assert describe(SEED_TREES["aqfl"], limit=20).endswith("…")


@given(st.integers(0, 2**32 - 1), st.integers(1, 6), st.booleans())
@settings(max_examples=300, deadline=None)
def test_random_trees_give_static_valid_code_and_round_trip(
    seed: int, levels: int, example: bool
) -> None:
    tree = random_tree(np.random.default_rng(seed), levels, Space(), example=example)
    report = check(to_source(tree), max_bytes=MAX_BYTES)
    assert report.ok, report.reason
    assert from_json(json.loads(json.dumps(to_json(tree)))) == tree
    if example:
        assert structural_problem(tree, max_nodes=10_000, max_depth=100) is None


@given(any_tree)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_any_tree_gives_static_valid_code_and_round_trips(tree: Node) -> None:
    report = check(to_source(tree), max_bytes=MAX_BYTES)
    assert report.ok, report.reason
    decoded = from_json(json.loads(json.dumps(to_json(tree))))
    assert decoded == tree and canonical(decoded) == canonical(tree)
    assert canonical(simplify(tree)) == canonical(simplify(decoded))


@given(st.integers(0, 2**32 - 1))
@settings(max_examples=60, deadline=None)
def test_evaluate_mirrors_generated_code(seed: int) -> None:
    """The torch screen sees exactly what the code computes (well-typed trees)."""
    tree = random_tree(np.random.default_rng(seed), 5, Space(), example=True)
    inputs = realistic_inputs(16, 0.3, seed % 1000)
    expected = evaluate(tree, inputs)
    actual = call_with(compile_trusted(to_source(tree)), inputs)
    assert torch.equal(torch.as_tensor(actual).isnan(), torch.as_tensor(expected).isnan())
    torch.testing.assert_close(actual, expected, rtol=1e-6, atol=1e-6, equal_nan=True)


def test_constants_keep_one_spelling() -> None:
    tree = Node(CONST, value=1.5)
    assert to_json(tree) == 1.5 and canonical(tree) == "1.5"
