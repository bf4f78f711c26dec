"""The store on both backends: round-trips, statuses, and the constraints the database enforces."""

from __future__ import annotations

from datetime import UTC

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from discovery.archive import (
    Archive,
    CampaignStatus,
    CandidateStatus,
    DuplicateEvaluationError,
    EvaluationStatus,
    NotFoundError,
)
from evaluator import LLMCall
from tests.factories import DPO_SOURCE, make_campaign, make_candidate


def test_campaign_round_trip_and_status(archive: Archive) -> None:
    spec = {"proposer": "evolve", "budget": {"candidates": 10}, "stages": ["bandit", "tinylm"]}
    created = archive.create_campaign(name="quick", spec=spec, seed=7)
    assert created.status is CampaignStatus.PENDING
    assert created.created_at.tzinfo == UTC

    fetched = archive.get_campaign(created.id)
    assert (fetched.name, fetched.spec, fetched.seed) == ("quick", spec, 7)

    running = archive.set_campaign_status(created.id, status=CampaignStatus.RUNNING)
    assert running.finished_at is None
    done = archive.set_campaign_status(
        created.id, status=CampaignStatus.FINISHED, reason="candidate budget reached"
    )
    assert done.finished_at is not None
    assert archive.get_campaign(created.id).reason == "candidate budget reached"

    second = make_campaign(archive, name="second")
    assert [c.id for c in archive.list_campaigns()] == [second.id, created.id]


def test_unknown_ids_raise_not_found(archive: Archive) -> None:
    with pytest.raises(NotFoundError, match="no campaign with id 999"):
        archive.get_campaign(999)
    with pytest.raises(NotFoundError, match="no candidate"):
        archive.get_candidate(999)
    with pytest.raises(NotFoundError, match="no campaign with id 999"):
        archive.add_candidate(campaign_id=999, name="x", source=DPO_SOURCE, origin="user")
    with pytest.raises(NotFoundError, match="no evaluation"):
        archive.finish_evaluation(999, status=EvaluationStatus.ERROR, reason="x")


def test_candidate_verdict_and_fingerprint_lookup(archive: Archive) -> None:
    campaign = make_campaign(archive)
    first = make_candidate(archive, campaign, name="dpo")
    child = archive.add_candidate(
        campaign_id=campaign.id,
        name="child",
        source=DPO_SOURCE,
        origin="evolve",
        parent_ids=[first.id],
        island=2,
        provenance={"seed": 3, "proposer": "evolve"},
    )
    assert child.status is CandidateStatus.PROPOSED
    assert (child.parent_ids, child.island, child.provenance["seed"]) == ([first.id], 2, 3)

    graph = '{"nodes": [{"op": "sub"}], "version": 1}'
    accepted = archive.update_candidate(
        first.id,
        status=CandidateStatus.ACCEPTED,
        fingerprint="abc123",
        canonical_code=DPO_SOURCE,
        graph_json=graph,
        verdict={"stage": None, "timings": {"static": 0.001}},
    )
    assert accepted.graph_json == graph and accepted.fingerprint == "abc123"
    duplicate = archive.update_candidate(
        child.id,
        status=CandidateStatus.DUPLICATE,
        fingerprint="abc123",
        duplicate_of=first.id,
        reason=f"same behaviour as candidate {first.id}",
    )
    assert duplicate.duplicate_of == first.id

    # The lookup returns the original, never the duplicate, and is scoped to the campaign.
    found = archive.find_by_fingerprint(campaign_id=campaign.id, fingerprint="abc123")
    assert found is not None and found.id == first.id
    other = make_campaign(archive, name="other")
    assert archive.find_by_fingerprint(campaign_id=other.id, fingerprint="abc123") is None

    counts = archive.count_candidates(campaign_id=campaign.id)
    assert counts == {CandidateStatus.ACCEPTED: 1, CandidateStatus.DUPLICATE: 1}
    assert archive.count_candidates_by_campaign() == {campaign.id: counts}  # `other` has none
    listed = archive.list_candidates(campaign_id=campaign.id, status=CandidateStatus.DUPLICATE)
    assert [c.id for c in listed] == [child.id]


def test_evaluation_lifecycle_and_json_metrics(archive: Archive) -> None:
    candidate = make_candidate(archive, make_campaign(archive))
    pending = archive.add_evaluation(candidate_id=candidate.id, stage="bandit", task="tab", seed=0)
    assert pending.status is EvaluationStatus.PENDING and pending.finished_at is None

    metrics = {"reward/normalized": 0.81, "kl/ref": 0.12, "per_step": [1.5, 1.25]}
    done = archive.finish_evaluation(
        pending.id,
        status=EvaluationStatus.DONE,
        score=0.03,
        metrics=metrics,
        timings={"train_s": 1.2},
        worker="node-1",
    )
    assert done.metrics == metrics and done.score == pytest.approx(0.03)
    assert done.finished_at is not None and done.worker == "node-1"

    failed = archive.add_evaluation(
        candidate_id=candidate.id,
        stage="bandit",
        task="tab",
        seed=1,
        status=EvaluationStatus.NAN_LOSS,
        reason="loss became NaN at step 12",
    )
    assert failed.score is None and failed.finished_at is not None
    by_campaign = archive.list_evaluations(campaign_id=candidate.campaign_id)
    assert [e.id for e in by_campaign] == [pending.id, failed.id]
    assert [e.id for e in archive.list_evaluations(status=EvaluationStatus.DONE)] == [pending.id]


def test_failed_evaluations_cannot_carry_a_score(archive: Archive) -> None:
    candidate = make_candidate(archive, make_campaign(archive))
    with pytest.raises(ValueError, match="only DONE evaluations carry a score"):
        archive.add_evaluation(
            candidate_id=candidate.id,
            stage="bandit",
            task="t",
            seed=0,
            status=EvaluationStatus.ERROR,
            score=0.0,
        )


def test_same_evaluation_twice_is_refused(archive: Archive) -> None:
    candidate = make_candidate(archive, make_campaign(archive))
    key = {"candidate_id": candidate.id, "stage": "bandit", "task": "tab", "seed": 0}
    archive.add_evaluation(**key, status=EvaluationStatus.DONE, score=0.1)
    with pytest.raises(DuplicateEvaluationError, match="already stored"):
        archive.add_evaluation(**key, status=EvaluationStatus.DONE, score=0.1)
    # A retry under a new attempt number cannot add a second DONE result either.
    with pytest.raises(DuplicateEvaluationError):
        archive.add_evaluation(**key, attempt=1, status=EvaluationStatus.DONE, score=0.2)
    # ...but a failed first attempt followed by a successful retry is the normal path.
    retry_key = {**key, "seed": 1}
    archive.add_evaluation(**retry_key, status=EvaluationStatus.ERROR, reason="worker died")
    archive.add_evaluation(**retry_key, attempt=1, status=EvaluationStatus.DONE, score=0.3)
    assert len(archive.list_evaluations(candidate_id=candidate.id)) == 3


def test_database_itself_refuses_duplicate_evaluations(archive: Archive) -> None:
    """Raw SQL, bypassing the store: the constraints live in the schema."""
    candidate = make_candidate(archive, make_campaign(archive))
    insert = text(
        "INSERT INTO evaluations (candidate_id, stage, task, seed, attempt, status, metrics,"
        " timings, created_at) VALUES (:c, 'bandit', 'tab', 0, :attempt, 'DONE', '{}', '{}',"
        " CURRENT_TIMESTAMP)"
    )
    with archive.engine.begin() as connection:
        connection.execute(insert, {"c": candidate.id, "attempt": 0})
    for attempt in (0, 1):  # same key; and same key with a new attempt, both DONE
        with pytest.raises(IntegrityError), archive.engine.begin() as connection:
            connection.execute(insert, {"c": candidate.id, "attempt": attempt})
    with archive.engine.connect() as connection:
        assert connection.scalar(text("SELECT count(*) FROM evaluations")) == 1


def test_finishing_a_second_done_is_refused(archive: Archive) -> None:
    candidate = make_candidate(archive, make_campaign(archive))
    key = {"candidate_id": candidate.id, "stage": "tinylm", "task": "arith", "seed": 0}
    first = archive.add_evaluation(**key, status=EvaluationStatus.RUNNING)
    second = archive.add_evaluation(**key, attempt=1, status=EvaluationStatus.RUNNING)
    archive.finish_evaluation(first.id, status=EvaluationStatus.DONE, score=0.5)
    with pytest.raises(DuplicateEvaluationError, match="already has a DONE evaluation"):
        archive.finish_evaluation(second.id, status=EvaluationStatus.DONE, score=0.6)
    stored = {e.id: e for e in archive.list_evaluations(candidate_id=candidate.id)}
    assert stored[second.id].status is EvaluationStatus.RUNNING  # the refused write left no trace


def test_llm_calls_and_cost(archive: Archive) -> None:
    campaign = make_campaign(archive)
    archive.record_llm_call(
        campaign_id=campaign.id,
        call=LLMCall(
            "propose",
            "gpt-x",
            prompt_tokens=1200,
            completion_tokens=300,
            cost_usd=0.0125,
            latency_s=2.5,
        ),
    )
    failed = archive.record_llm_call(
        campaign_id=campaign.id,
        call=LLMCall("propose", "gpt-x", 0, 0, 0.0, 0.1, error="HTTP 429 after 3 retries"),
    )
    assert failed.error == "HTTP 429 after 3 retries"
    assert archive.llm_cost(campaign_id=campaign.id) == pytest.approx(0.0125)
    assert archive.llm_cost(campaign_id=make_campaign(archive).id) == 0.0
    calls = archive.list_llm_calls(campaign_id=campaign.id)
    assert [(c.prompt_tokens, c.error) for c in calls] == [(1200, None), (0, failed.error)]


def test_events_stream_in_order_after_a_cursor(archive: Archive) -> None:
    campaign = make_campaign(archive)
    other = make_campaign(archive, name="other")
    ids = [
        archive.append_event(campaign_id=campaign.id, kind="proposal", payload={"n": i}).id
        for i in range(5)
    ]
    archive.append_event(campaign_id=other.id, kind="proposal")
    events = archive.list_events(campaign_id=campaign.id, after_id=ids[1])
    assert [e.payload["n"] for e in events] == [2, 3, 4]
    assert [e.id for e in archive.list_events(campaign_id=campaign.id, limit=2)] == ids[:2]


def test_nul_characters_are_stored_as_a_visible_mark_on_every_backend(archive: Archive) -> None:
    # PostgreSQL refuses NUL in text and JSONB; an LLM reply or a candidate's output may hold one.
    campaign = archive.create_campaign(name="nul\x00", spec={"k\x00": ["v\x00"]}, seed=0)
    candidate = archive.add_candidate(
        campaign_id=campaign.id,
        name="a\x00b",
        source="def loss(\x00): ...",
        origin="llm",
        thought="why\x00",
    )
    archive.update_candidate(
        candidate.id,
        status=CandidateStatus.REJECTED,
        reason="bad\x00",
        verdict={"reason": "x\x00y", "nested": [{"z": "\x00"}]},
    )
    archive.add_evaluation(
        candidate_id=candidate.id,
        stage="bandit",
        task="t",
        seed=0,
        status=EvaluationStatus.ERROR,
        metrics={"note": "m\x00"},
        reason="r\x00",
    )
    archive.append_event(campaign_id=campaign.id, kind="verdict", payload={"reason": "p\x00"})
    archive.record_llm_call(
        campaign_id=campaign.id, call=LLMCall("propose", "m", 0, 0, 0.0, 0.0, error="e\x00")
    )

    stored = archive.get_candidate(candidate.id)
    assert (stored.name, stored.thought, stored.reason) == ("a\ufffdb", "why\ufffd", "bad\ufffd")
    assert stored.source == "def loss(\ufffd): ..."
    assert stored.verdict == {"reason": "x\ufffdy", "nested": [{"z": "\ufffd"}]}
    assert archive.get_campaign(campaign.id).spec == {"k\ufffd": ["v\ufffd"]}
    [evaluation] = archive.list_evaluations(candidate_id=candidate.id)
    assert (evaluation.metrics, evaluation.reason) == ({"note": "m\ufffd"}, "r\ufffd")
    [event] = archive.list_events(campaign_id=campaign.id)
    assert event.payload == {"reason": "p\ufffd"}
    assert archive.list_llm_calls(campaign_id=campaign.id)[0].error == "e\ufffd"
