"""Factories for archive rows, in one place."""

from __future__ import annotations

from collections.abc import Sequence

from discovery.archive import (
    Archive,
    CampaignRecord,
    CandidateRecord,
    CandidateStatus,
    EvaluationStatus,
)

DPO_SOURCE = (
    "def loss(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps,"
    " beta):\n"
    "    margin = (policy_chosen_logps - ref_chosen_logps)"
    " - (policy_rejected_logps - ref_rejected_logps)\n"
    "    return -F.logsigmoid(beta * margin)\n"
)


def make_campaign(archive: Archive, *, name: str = "test", seed: int = 0) -> CampaignRecord:
    return archive.create_campaign(
        name=name, spec={"proposer": "evolve", "stages": ["bandit"]}, seed=seed
    )


def make_candidate(
    archive: Archive, campaign: CampaignRecord, *, name: str = "dpo", origin: str = "baseline"
) -> CandidateRecord:
    return archive.add_candidate(
        campaign_id=campaign.id, name=name, source=DPO_SOURCE, origin=origin, thought="baseline"
    )


def scored_candidate(
    archive: Archive,
    campaign_id: int,
    name: str,
    *,
    scores: Sequence[float] = (),
    status: CandidateStatus = CandidateStatus.EVALUATED,
    origin: str = "evolve",
    stage: str = "bandit",
    task: str = "tabular",
) -> CandidateRecord:
    """A candidate with one DONE evaluation per score, seeds 0, 1, ... (none: unscored)."""
    record = archive.add_candidate(
        campaign_id=campaign_id, name=name, source=DPO_SOURCE, origin=origin, status=status
    )
    for seed, score in enumerate(scores):
        archive.add_evaluation(
            candidate_id=record.id,
            stage=stage,
            task=task,
            seed=seed,
            status=EvaluationStatus.DONE,
            score=score,
        )
    return record
