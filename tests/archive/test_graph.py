"""A candidate's rebuilt graph goes in and comes out as JSON text; its column's wrapper stays in."""

from __future__ import annotations

import pytest

from discovery.archive import Archive, CandidateStatus
from tests.factories import make_campaign, make_candidate

GRAPH = '{"nodes": [{"op": "sub"}], "version": 1}'


def test_the_graph_is_given_and_read_as_json_text(archive: Archive) -> None:
    campaign = make_campaign(archive)
    candidate = make_candidate(archive, campaign)
    assert candidate.graph_json is None  # not validated yet

    accepted = archive.update_candidate(
        candidate.id, status=CandidateStatus.ACCEPTED, graph_json=GRAPH, fingerprint="f"
    )
    assert accepted.graph_json == GRAPH == archive.get_candidate(candidate.id).graph_json
    # Stored in the shape rows written before graph_json have, so both read back alike.
    assert accepted.graph == {"json": GRAPH}
    evaluated = archive.update_candidate(candidate.id, status=CandidateStatus.EVALUATED)
    assert evaluated.graph_json == GRAPH  # a status change keeps the stored graph
    assert archive.list_candidates(campaign_id=campaign.id)[0].graph_json == GRAPH


def test_a_graph_is_given_as_text_and_nothing_else(archive: Archive) -> None:
    campaign = make_campaign(archive)
    candidate = make_candidate(archive, campaign)
    with pytest.raises(TypeError, match="JSON text, not a dict"):
        archive.update_candidate(
            candidate.id,
            status=CandidateStatus.ACCEPTED,
            graph_json={"json": GRAPH},  # type: ignore[arg-type]
        )
    stored = archive.get_candidate(candidate.id)
    assert (stored.status, stored.graph) == (CandidateStatus.PROPOSED, None)  # nothing written
