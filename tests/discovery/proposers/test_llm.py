"""The LLM proposer against a scripted OpenAI-compatible server and the real sandbox."""

from __future__ import annotations

import json

import numpy as np
import pytest

from discovery.proposers.base import Parent, ProposalContext
from discovery.proposers.errors import BudgetExhausted, ProposerUnavailable
from discovery.proposers.llm.proposer import LLMProposer
from discovery.proposers.llm.wiring import LLMSettings, build_llm_proposer
from discovery.spec import ProposerSpec
from evaluator import LLMCall
from sandbox import Candidate, Sandbox
from tests.discovery.llm_sources import (
    BLEND,
    DPO_AGAIN,
    HOSTILE,
    SOFT_HINGE,
    SQUARED,
    VALUE_READ,
    WRONG_WAY,
)
from tests.openai_server import Reply, ScriptedServer, candidates

CONTEXT = ProposalContext(
    parents=(
        Parent(7, "lrml", SOFT_HINGE, 0.02, None, 0, {"bandit/frontier/area": 0.61}),
        Parent(9, "ipo", BLEND, -0.01, None, 0, {"bandit/frontier/area": 0.55}),
    ),
    inspirations=(),
    failures=(),
    island=0,
    stage_metric="bandit/frontier/area",
)


def build(
    server: ScriptedServer,
    sandbox: Sandbox | None,
    records: list[LLMCall],
    **llm: object,
) -> LLMProposer:
    section = {"base_url": server.base_url, "backoff_s": 0.01, **llm}
    if "models" not in llm:
        section["model"] = "m"
    spec = ProposerSpec.model_validate({"kind": "llm", "llm": section})
    return build_llm_proposer(
        spec,
        np.random.default_rng(0),
        settings=LLMSettings(),
        recorder=records.append,
        validator=sandbox,
        dollar_budget=False,
    )


def last_user_message(body: dict) -> str:
    return [m for m in body["messages"] if m["role"] == "user"][-1]["content"]


def test_valid_candidates_become_proposals_with_provenance(
    openai_server: ScriptedServer, sandbox: Sandbox
) -> None:
    openai_server.push(Reply(content=candidates(("soft-hinge", SOFT_HINGE), ("blend", BLEND))))
    records: list[LLMCall] = []
    proposals = build(openai_server, sandbox, records).propose(CONTEXT, 2)
    assert [p.name for p in proposals] == ["soft-hinge", "blend"]
    for p in proposals:
        assert p.origin == "llm" and p.operator == "write" and p.model == "m"
        assert p.rejection is None and p.parent_ids == (7, 9) and p.genome is None
        assert p.prompt_hash and len(p.prompt_hash) == 16
    assert len(openai_server.requests) == 1 and len(records) == 1  # nothing to repair
    sent = openai_server.requests[0]["messages"]
    assert sent[0]["role"] == "system" and "THE LOSS CONTRACT" in sent[0]["content"]
    assert "### lrml (score +0.0200 vs DPO)" in sent[1]["content"]


def test_a_rejected_candidate_is_repaired_with_the_sandbox_reason(
    openai_server: ScriptedServer, sandbox: Sandbox
) -> None:
    first = candidates(("reads-value", VALUE_READ), ("soft-hinge", SOFT_HINGE))
    openai_server.push(Reply(content=first), Reply(content=candidates(("reads-value", BLEND))))
    records: list[LLMCall] = []
    proposals = build(openai_server, sandbox, records).propose(CONTEXT, 2)
    assert [(p.name, p.operator) for p in proposals] == [
        ("reads-value", "write"),
        ("soft-hinge", "write"),
        ("reads-value", "repair"),
    ]
    # The original is kept (the engine stores it REJECTED with the sandbox's reason).
    assert proposals[0].code == VALUE_READ and proposals[0].rejection is None
    reason = sandbox.validate(Candidate("reads-value", "", VALUE_READ)).reason
    assert ".item" in reason
    repair_request = openai_server.requests[1]
    assert f"- candidate 'reads-value': {reason}" in last_user_message(repair_request)
    assert repair_request["messages"][2] == {"role": "assistant", "content": first}
    assert proposals[2].thought.startswith("Repair of 'reads-value', rejected because:")
    assert [r.purpose for r in records] == ["propose", "repair"]


def test_repairs_are_bounded(openai_server: ScriptedServer, sandbox: Sandbox) -> None:
    openai_server.default = Reply(content=candidates(("evil", HOSTILE)))
    proposals = build(openai_server, sandbox, [], repair_attempts=2).propose(CONTEXT, 1)
    assert [p.operator for p in proposals] == ["write", "repair", "repair"]
    assert len(openai_server.requests) == 3
    reasons = [last_user_message(b) for b in openai_server.requests[1:]]
    assert all("import os is not allowed" in r for r in reasons)
    none = build(openai_server, sandbox, [], repair_attempts=0).propose(CONTEXT, 1)
    assert [p.operator for p in none] == ["write"] and len(openai_server.requests) == 4


def test_garbage_becomes_a_rejection_and_the_model_is_told(
    openai_server: ScriptedServer, sandbox: Sandbox
) -> None:
    openai_server.push(
        Reply(content="I'd love to help! Losses are fascinating. {{{"),
        Reply(content=f"Sorry. Here:\n```python\n{SQUARED}```"),
    )
    proposals = build(openai_server, sandbox, []).propose(CONTEXT, 2)
    junk, fixed = proposals
    assert junk.rejection is not None and "no candidate found" in junk.rejection
    assert junk.code.startswith("I'd love to help") and junk.name.startswith("llm-unreadable-")
    assert fixed.rejection is None and fixed.code.strip() == SQUARED.strip()
    assert fixed.operator == "repair" and "an unreadable reply" in fixed.thought
    assert "- your reply: no candidate found" in last_user_message(openai_server.requests[1])


def test_each_kind_of_bad_candidate_carries_its_reason(
    openai_server: ScriptedServer, sandbox: Sandbox
) -> None:
    reply = candidates(
        ("wrong-way", WRONG_WAY), ("evil", HOSTILE), ("dpo-again", DPO_AGAIN), ("blend", BLEND)
    )
    openai_server.push(Reply(content=reply), Reply(content="still nothing"))
    proposals = build(openai_server, sandbox, []).propose(CONTEXT, 4)
    shown = last_user_message(openai_server.requests[1])
    assert "candidate 'wrong-way': " in shown and "rejected answer" in shown
    assert "candidate 'evil': " in shown and "import os is not allowed" in shown
    # A copy of DPO passes the sandbox (the engine catches it by fingerprint, before training).
    assert "dpo-again" not in shown and "'blend'" not in shown
    assert [p.name for p in proposals][:4] == ["wrong-way", "evil", "dpo-again", "blend"]
    assert proposals[-1].rejection is not None  # the junk repair reply


def test_an_endpoint_lost_during_repairs_keeps_the_round(
    openai_server: ScriptedServer, sandbox: Sandbox
) -> None:
    openai_server.push(Reply(content=candidates(("evil", HOSTILE), ("blend", BLEND))))
    openai_server.default = Reply(status=500)
    proposer = build(openai_server, sandbox, [], max_retries=0, breaker_calls=1)
    proposals = proposer.propose(CONTEXT, 2)
    assert [p.name for p in proposals] == ["evil", "blend"]
    with pytest.raises(ProposerUnavailable, match="unreachable or failing"):
        proposer.propose(CONTEXT, 2)


def test_the_dollar_budget_is_checked_before_calling(
    openai_server: ScriptedServer, sandbox: Sandbox
) -> None:
    prices = {"m": {"prompt": 100.0, "completion": 100.0}}
    proposer = build(openai_server, sandbox, [], prices=prices)
    broke = ProposalContext((), (), (), None, "bandit/frontier/area", dollars_left=0.01)
    with pytest.raises(BudgetExhausted):
        proposer.propose(broke, 2)
    assert openai_server.requests == []


def test_the_bandit_learns_which_model_writes_candidates_that_pass(
    openai_server: ScriptedServer, sandbox: Sandbox
) -> None:
    def by_model(body: dict) -> Reply:
        if body["model"] == "good":
            return Reply(content=candidates(("blend", BLEND)))
        return Reply(content=json.dumps({"candidates": [{"name": "x", "code": WRONG_WAY}]}))

    openai_server.default = by_model
    proposer = build(openai_server, sandbox, [], models=["bad", "good"], repair_attempts=0)
    models = [proposer.propose(CONTEXT, 1)[0].model for _ in range(12)]
    assert models[-6:].count("good") >= 5, models
    accepted, rejected, _ = proposer.bandit.stats()["bad"]
    assert accepted == 0 and rejected >= 1  # it was tried, and it was judged
