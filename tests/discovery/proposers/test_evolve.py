"""The evolve proposer end to end: proposals from seeded parents, checked by the real sandbox."""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import replace

import numpy as np
import pytest

from discovery.proposers import Failure, Parent, Proposal, ProposalContext, Proposer
from discovery.proposers.evolve.expr import canonical, decode_genome, encode_genome, leaf
from discovery.proposers.evolve.proposer import EvolveConfig, EvolveProposer, Operator
from discovery.proposers.evolve.seeds import SEED_TREES
from sandbox import Candidate, Sandbox, SandboxConfig, parse_candidate
from sandbox.static import check
from tests.discovery.proposers.conftest import COLD_CONTEXT, seeded_context

BATCH = 60
MIN_ACCEPTANCE = 0.7
MAX_BYTES = SandboxConfig().max_source_bytes


def _proposer(seed: int = 0, **overrides: object) -> EvolveProposer:
    return EvolveProposer(EvolveConfig(**overrides), np.random.default_rng(seed))  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def batch() -> list[Proposal]:
    return _proposer(seed=7).propose(seeded_context(), BATCH)


def test_evolve_implements_the_protocol() -> None:
    proposer = _proposer()
    assert isinstance(proposer, Proposer) and proposer.name == "evolve"


def test_batch_is_mostly_accepted_by_the_sandbox(
    batch: list[Proposal], sandbox: Sandbox, record_property: pytest.RecordProperty
) -> None:
    assert len(batch) == BATCH
    verdicts = [sandbox.validate(Candidate(p.name, p.thought, p.code)) for p in batch]
    rate = sum(v.accepted for v in verdicts) / len(verdicts)
    record_property("sandbox_acceptance", rate)
    rejected = [v.summary() for v in verdicts if not v.accepted]
    assert rate >= MIN_ACCEPTANCE, rejected
    fingerprints = Counter(v.fingerprint for v in verdicts if v.accepted)
    assert len(fingerprints) >= 0.8 * sum(fingerprints.values())  # mostly distinct losses


def test_batch_is_unique_valid_contract_json(batch: list[Proposal]) -> None:
    keys = [canonical(decode_genome(p.genome)) for p in batch]
    assert len(set(keys)) == len(keys)
    assert len({p.name for p in batch}) == len(batch)
    for proposal in batch:
        candidate = parse_candidate(json.dumps(proposal.as_candidate_json()))
        assert candidate == Candidate(proposal.name, proposal.thought, proposal.code)
        report = check(proposal.code, max_bytes=MAX_BYTES)
        assert report.ok and report.function_name == "loss", report.reason
        assert proposal.name.startswith("evo-") and len(proposal.name) == 12
        assert proposal.origin == "evolve" and proposal.thought.endswith(".")
        assert "\n" not in proposal.thought


def test_batch_exercises_every_operator_and_records_parents(batch: list[Proposal]) -> None:
    operators = Counter(p.operator for p in batch)
    assert set(operators) == {str(op) for op in Operator} - {"seed"}, operators
    ids = {p.id for p in (*seeded_context().parents, *seeded_context().inspirations)}
    for proposal in batch:
        assert set(proposal.parent_ids) <= ids
        expected = 2 if proposal.operator in ("crossover", "blend") else 1
        assert len(proposal.parent_ids) <= expected
        assert proposal.parent_ids, proposal  # parents have genomes: never a bare seed here
        for parent_id in proposal.parent_ids:
            assert f"#{parent_id}" in proposal.thought


def test_same_seed_same_proposals_and_other_seed_differs() -> None:
    first = _proposer(seed=3).propose(seeded_context(), 20)
    second = _proposer(seed=3).propose(seeded_context(), 20)
    other = _proposer(seed=4).propose(seeded_context(), 20)
    assert first == second
    assert [p.name for p in first] != [p.name for p in other]


def test_n_is_respected_and_never_repeated_within_an_instance() -> None:
    proposer = _proposer(seed=1)
    assert proposer.propose(seeded_context(), 0) == []
    first = proposer.propose(seeded_context(), 5)
    second = proposer.propose(seeded_context(), 7)
    assert len(first) == 5 and len(second) == 7
    assert not {p.name for p in first} & {p.name for p in second}
    parents = {canonical(decode_genome(p.genome)) for p in seeded_context().parents}
    assert not parents & {canonical(decode_genome(p.genome)) for p in first + second}


def test_cold_start_proposes_the_seeds_first_then_variations() -> None:
    proposer = _proposer(seed=2)
    proposals = proposer.propose(COLD_CONTEXT, len(SEED_TREES) + 5)
    seeds = proposals[: len(SEED_TREES)]
    assert [p.operator for p in seeds] == ["seed"] * len(SEED_TREES)
    assert [decode_genome(p.genome) for p in seeds] == list(SEED_TREES.values())
    assert all(p.operator != "seed" and p.parent_ids == () for p in proposals[len(seeds) :])
    again = proposer.propose(COLD_CONTEXT, 3)  # seeds are proposed once per instance
    assert [p.operator for p in again] != ["seed"] * 3
    assert _proposer(emit_seeds=False).propose(COLD_CONTEXT, 1)[0].operator != "seed"


def test_parents_without_genome_fall_back_to_seed_trees() -> None:
    llm_only = seeded_context(with_genomes=False)
    proposals = _proposer(seed=5).propose(llm_only, 10)
    assert len(proposals) == 10
    assert all(p.parent_ids == () and "seed " in p.thought for p in proposals)
    assert all(p.operator != "seed" for p in proposals)


def test_bad_genomes_are_skipped_not_raised() -> None:
    good = seeded_context().parents[0]
    broken = (
        replace(good, id=90, genome={"format": "lossforge-expr/1", "tree": ["nope", 1]}),
        replace(good, id=91, genome={"format": "other", "tree": "delta"}),
        replace(good, id=92, genome={"tree": [[["deep"]]]}),
    )
    context = ProposalContext((*broken, good), (), (), None, "m")
    proposals = _proposer(seed=6).propose(context, 8)
    assert len(proposals) == 8
    assert all(set(p.parent_ids) <= {good.id} for p in proposals)


def test_failures_are_not_proposed_again() -> None:
    reference = _proposer(seed=8).propose(COLD_CONTEXT, 3)
    failures = tuple(Failure(p.name, p.code, "rewards_rejected") for p in reference)
    context = replace(COLD_CONTEXT, failures=failures)
    retried = _proposer(seed=8).propose(context, 3)
    assert not {p.code for p in retried} & {p.code for p in reference}


def test_a_single_tiny_parent_still_yields_proposals() -> None:
    tiny = Parent(1, "margin", "", 0.5, encode_genome(-leaf("delta")), None)
    proposals = _proposer(seed=9).propose(ProposalContext((tiny,), (), (), None, "m"), 10)
    assert len(proposals) == 10


def test_returns_fewer_when_the_space_is_exhausted() -> None:
    proposer = _proposer(
        seeds=("dpo",),
        mutate_weight=0,
        point_weight=0,
        crossover_weight=0,
        blend_weight=0,
        perturb_weight=1,
        max_attempts=2,
    )
    parent = Parent(1, "dpo", "", 0.0, encode_genome(SEED_TREES["dpo"]), None)  # no constants
    assert proposer.propose(ProposalContext((parent,), (), (), None, "m"), 5) == []


@pytest.mark.parametrize(
    "overrides",
    [
        {"seeds": ("nope",)},
        {"seeds": ()},
        {"mutate_weight": -1.0},
        {
            "mutate_weight": 0,
            "point_weight": 0,
            "perturb_weight": 0,
            "crossover_weight": 0,
            "blend_weight": 0,
        },
        {"max_nodes": 0},
        {"seed_partner_prob": 2.0},
    ],
)
def test_config_is_validated(overrides: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="EvolveConfig"):
        EvolveConfig(**overrides)  # type: ignore[arg-type]


def test_config_from_a_spec_accepts_lists() -> None:
    assert EvolveConfig(seeds=["dpo", "lrml"]).seeds == ("dpo", "lrml")  # type: ignore[arg-type]


def test_children_of_seeds_name_the_campaigns_baseline_as_parent() -> None:
    ids = {name: 100 + i for i, name in enumerate(SEED_TREES)}
    context = replace(COLD_CONTEXT, baselines=ids)
    proposals = _proposer(seed=4, emit_seeds=False).propose(context, 12)
    assert proposals
    for p in proposals:
        seeds = re.findall(r"seed (\w+)", p.thought)
        assert seeds and set(p.parent_ids) == {ids[name] for name in seeds}, (p.thought, p)
