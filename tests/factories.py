"""Factories for archive rows, in one place."""

from __future__ import annotations

from discovery.archive import Archive, CampaignRecord, CandidateRecord

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
