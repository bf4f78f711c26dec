"""How the engine reacts to what a proposer reports: an unavailable proposer pauses the campaign,
a spent LLM budget ends proposing (the queue is finished), and a proposal that arrives rejected
is stored with its reason."""

from __future__ import annotations

from discovery.archive import Archive, CampaignStatus, CandidateStatus, EvaluationStatus
from discovery.proposers.base import Proposal, ProposalContext
from discovery.proposers.errors import BudgetExhausted, ProposerUnavailable
from tests.discovery.conftest import RunEngine, small_spec
from tests.discovery.llm_sources import BLEND


class Reporting:
    """Returns a good proposal and one already rejected, then raises what it was given."""

    name = "reporting"

    def __init__(self, then: Exception) -> None:
        self.then = then
        self.contexts: list[ProposalContext] = []

    def propose(self, context: ProposalContext, n: int) -> list[Proposal]:
        self.contexts.append(context)
        if len(self.contexts) > 1:
            raise self.then
        common = {"parent_ids": (), "genome": None, "origin": "reporting", "operator": "write"}
        return [
            Proposal(name="blend", thought="t", code=BLEND, model="m", prompt_hash="ab", **common),
            Proposal(
                name="junk", thought="t", code="???", rejection="no candidate found", **common
            ),
        ]


def test_unavailable_pauses_then_a_spent_budget_finishes(
    run_engine: RunEngine, store: Archive
) -> None:
    spec = small_spec(budget={"candidates": 10, "llm_dollars": 5.0})
    down = Reporting(ProposerUnavailable("LLM endpoint http://x/v1 unreachable"))
    cid, status = run_engine(spec, proposer=down)
    assert status is CampaignStatus.PAUSED
    reason = store.get_campaign(cid).reason
    assert reason == (
        f"LLM endpoint http://x/v1 unreachable; then resume with `lossforge run --resume {cid}`"
    )
    assert down.contexts[0].dollars_left == 5.0  # nothing spent yet
    named = {c.name: c for c in store.list_candidates(campaign_id=cid)}
    junk = named["junk"]
    assert junk.status is CandidateStatus.REJECTED and junk.reason == "no candidate found"
    assert store.list_evaluations(candidate_id=junk.id) == []
    assert named["blend"].provenance["model"] == "m"
    assert named["blend"].provenance["prompt_hash"] == "ab"
    assert {e.status for e in store.list_evaluations(campaign_id=cid)} <= {
        EvaluationStatus.DONE,
        EvaluationStatus.PENDING,
    }

    broke = Reporting(BudgetExhausted("a propose call could cost up to $1 and $0.5 is left"))
    broke.contexts.append(down.contexts[0])  # it has proposed before: raise at once
    _, status = run_engine(spec, campaign_id=cid, proposer=broke)
    assert status is CampaignStatus.FINISHED
    assert store.get_campaign(cid).reason == (
        "LLM-dollar budget reached: a propose call could cost up to $1 and $0.5 is left"
    )
    # What was paid for is still evaluated: the queue is finished before the campaign is.
    assert {e.status for e in store.list_evaluations(campaign_id=cid)} == {EvaluationStatus.DONE}
