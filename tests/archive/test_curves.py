"""evaluations.curves on both backends: stored and read back (non-finite values as null), left out
of the lean reads a leaderboard makes, and added by migration 0004 to an archive that has rows."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from sqlalchemy import MetaData, event, insert
from sqlalchemy.engine import Engine

from discovery.archive import (
    Archive,
    EvaluationStatus,
    create_archive_engine,
    open_archive,
    upgrade,
)
from tests.factories import make_campaign, make_candidate

CURVES = {
    "step": [2, 4, 5],
    "loss": [0.69, 0.5, math.nan],
    "rewards/margins": [0.0, 0.25, math.inf],
    "kl/ref": [0.0, 0.01, 0.02],
}


@contextmanager
def statements(engine: Engine) -> Iterator[list[str]]:
    """The SQL statements `engine` runs inside the block."""
    seen: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany) -> None:
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def test_curves_are_stored_and_read_back_with_null_for_non_finite(archive: Archive) -> None:
    candidate = make_candidate(archive, make_campaign(archive))
    pending = archive.add_evaluation(candidate_id=candidate.id, stage="bandit", task="t", seed=0)
    finished = archive.finish_evaluation(pending.id, status=EvaluationStatus.NAN_LOSS, reason="x")
    assert finished.curves == {}  # a write returns the lean record
    second = archive.add_evaluation(candidate_id=candidate.id, stage="bandit", task="t", seed=1)
    archive.finish_evaluation(
        second.id, status=EvaluationStatus.NAN_LOSS, reason="loss is NaN", curves=CURVES
    )
    stored = archive.list_evaluations(candidate_id=candidate.id, with_curves=True)
    assert [e.curves for e in stored] == [
        {},
        {
            "step": [2, 4, 5],
            "loss": [0.69, 0.5, None],
            "rewards/margins": [0.0, 0.25, None],
            "kl/ref": [0.0, 0.01, 0.02],
        },
    ]
    direct = archive.add_evaluation(
        candidate_id=candidate.id,
        stage="bandit",
        task="t",
        seed=2,
        status=EvaluationStatus.DONE,
        curves={"step": [1], "loss": [0.7]},
    )
    last = archive.list_evaluations(candidate_id=candidate.id, with_curves=True)[-1]
    assert (last.id, last.curves) == (direct.id, {"step": [1], "loss": [0.7]})


def test_lean_reads_never_load_the_curves(archive: Archive) -> None:
    campaign = make_campaign(archive)
    candidate = make_candidate(archive, campaign)
    pending = archive.add_evaluation(candidate_id=candidate.id, stage="bandit", task="t", seed=0)
    archive.finish_evaluation(pending.id, status=EvaluationStatus.DONE, curves=CURVES)

    with statements(archive.engine) as lean:
        scores = archive.campaign_scores(campaign_id=campaign.id)
        plain = archive.list_evaluations(campaign_id=campaign.id)
    assert [s.status for s in scores] == [EvaluationStatus.DONE]
    assert [e.curves for e in plain] == [{}]
    assert lean and not any("curves" in s for s in lean), lean

    with statements(archive.engine) as full:
        (with_curves,) = archive.list_evaluations(campaign_id=campaign.id, with_curves=True)
    assert any("curves" in s for s in full)  # the check above can see the column
    assert with_curves.curves["step"] == [2, 4, 5]


def test_migration_0004_gives_existing_evaluations_empty_curves(database_url: str) -> None:
    engine = create_archive_engine(database_url)
    upgrade(engine, "0003")
    tables = MetaData()
    tables.reflect(engine)
    assert "curves" not in tables.tables["evaluations"].c
    now = datetime.now(UTC)
    with engine.begin() as connection:
        campaign_id = connection.execute(
            insert(tables.tables["campaigns"]).values(
                name="old", status="FINISHED", spec={}, seed=0, created_at=now, updated_at=now
            )
        ).inserted_primary_key[0]
        candidate_id = connection.execute(
            insert(tables.tables["candidates"]).values(
                campaign_id=campaign_id,
                name="dpo",
                thought="",
                source="def loss(): ...",
                origin="baseline",
                status="EVALUATED",
                parent_ids=[],
                provenance={},
                created_at=now,
            )
        ).inserted_primary_key[0]
        connection.execute(
            insert(tables.tables["evaluations"]).values(
                candidate_id=candidate_id,
                stage="bandit",
                task="tabular",
                seed=0,
                attempt=0,
                status="DONE",
                score=0.0,
                metrics={"loss/final": 0.3},
                timings={},
                created_at=now,
                finished_at=now,
            )
        )
    engine.dispose()

    archive = open_archive(database_url)  # upgrades to the head
    (old,) = archive.list_evaluations(candidate_id=candidate_id, with_curves=True)
    assert (old.metrics, old.curves) == ({"loss/final": 0.3}, {})
    archive.engine.dispose()
