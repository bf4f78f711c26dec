"""A campaign's leaderboard and whether its proxy holds, read from the archive.

It reads the stored spec for each stage's public and held-out tasks and selection seeds, then
ranks (discovery.scores). It does not evaluate anything and imports nothing heavy: the CLI's
`leaderboard` command runs without torch or Ray.
"""

from __future__ import annotations

from discovery.archive import Archive
from discovery.scores import (
    LeaderboardRow,
    ProxyValidity,
    StageTasks,
    leaderboard,
    proxy_validity,
)
from discovery.spec import CampaignSpec, parse_spec
from evaluator import Correlation

__all__ = [
    "Correlation",
    "campaign_leaderboard",
    "campaign_report",
    "campaign_stages",
    "held_out_tasks",
]


def campaign_stages(spec: CampaignSpec) -> list[StageTasks]:
    """Each stage's public and held-out tasks and its selection seeds, as the leaderboard and
    the proxy-validity report read them."""
    stages = []
    for stage in spec.stages:
        held = stage.held_out()
        tasks = stage.task_names()
        stages.append(
            StageTasks(
                name=stage.name,
                public=[t for t in tasks if not held[t]],
                held_out=[t for t in tasks if held[t]],
                seeds=stage.seeds,
            )
        )
    return stages


def campaign_leaderboard(archive: Archive, campaign_id: int) -> list[LeaderboardRow]:
    return campaign_report(archive, campaign_id)[0]


def campaign_report(
    archive: Archive, campaign_id: int
) -> tuple[list[LeaderboardRow], ProxyValidity]:
    """The leaderboard and whether its proxy holds (Spearman's rho of public vs held-out
    scores, and between consecutive stages), from one read of the campaign."""
    stages = campaign_stages(parse_spec(archive.get_campaign(campaign_id).spec))
    candidates = archive.candidate_summaries(campaign_id=campaign_id)
    scores = archive.campaign_scores(campaign_id=campaign_id)
    return (
        leaderboard(candidates, scores, stages=stages),
        proxy_validity(candidates, scores, stages=stages),
    )


def held_out_tasks(spec: dict[str, object]) -> dict[str, set[str]]:
    """Stage name -> its held-out tasks, from a stored campaign spec."""
    return {
        stage.name: {t for t, held in stage.held_out().items() if held}
        for stage in parse_spec(spec).stages
    }
