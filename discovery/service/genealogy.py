"""A campaign's genealogy: every candidate (baselines, rejections and duplicates included) with
its parents, island and leaderboard score, for a graph of who descends from whom.

Reads the campaign's candidate summaries and joins them to leaderboard rows it is given (the API
passes its cached board's), so it computes no score itself. It draws nothing: edges are implied
by `parent_ids` (parent -> child) and `duplicate_of`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from discovery.archive import Archive, CandidateSummary
from discovery.scores import LeaderboardRow


@dataclass(frozen=True)
class Node:
    id: int
    name: str
    origin: str
    status: str
    island: int | None
    parent_ids: list[int]
    duplicate_of: int | None
    stage: str | None  # highest stage with a score; None: none
    score: float | None  # its leaderboard score vs DPO at that stage
    confirmation: str
    created_at: datetime | None


@dataclass(frozen=True)
class Genealogy:
    campaign_id: int
    islands: list[int]  # ascending
    nodes: list[Node]  # id order (oldest first)


def genealogy(
    campaign_id: int, summaries: Sequence[CandidateSummary], rows: Sequence[LeaderboardRow]
) -> Genealogy:
    """Nodes from candidate summaries, each with its leaderboard row's stage, score and
    confirmation (a candidate the board has not ranked yet has none)."""
    by_id = {row.id: row for row in rows}
    nodes = []
    for c in sorted(summaries, key=lambda c: c.id):
        row = by_id.get(c.id)
        nodes.append(
            Node(
                id=c.id,
                name=c.name,
                origin=c.origin,
                status=str(c.status),
                island=c.island,
                parent_ids=list(c.parent_ids),
                duplicate_of=c.duplicate_of,
                stage=row.stage if row is not None else None,
                score=row.score if row is not None else None,
                confirmation=row.confirmation if row is not None else "unconfirmed",
                created_at=c.created_at,
            )
        )
    islands = sorted({n.island for n in nodes if n.island is not None})
    return Genealogy(campaign_id=campaign_id, islands=islands, nodes=nodes)


def campaign_genealogy(
    archive: Archive, campaign_id: int, rows: Sequence[LeaderboardRow]
) -> Genealogy:
    """The campaign's genealogy; NotFoundError for an unknown campaign."""
    archive.get_campaign(campaign_id)  # an unknown id is a NotFoundError, not an empty graph
    return genealogy(campaign_id, archive.candidate_summaries(campaign_id=campaign_id), rows)
