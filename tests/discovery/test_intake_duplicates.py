"""Duplicates by behaviour at intake: rescalings are one loss, an impostor cannot take a place.

Real sandbox workers, a real SQLite archive: candidates go through `Intake.validate` as the engine
sends them, and the stored statuses are what is asserted.
"""

from __future__ import annotations

import pytest

from discovery.archive import Archive, CandidateStatus
from discovery.intake import Intake
from discovery.ledger import Ledger
from discovery.runner import create_campaign
from evaluator.baselines import BASELINES
from sandbox import Sandbox
from tests.discovery.conftest import small_spec
from tests.sandbox.sources import DELTA, loss_source
from tests.sandbox.test_coverage import CDPO, IMPOSTOR

Z = f"z = beta * {DELTA}"


@pytest.fixture
def intake(store: Archive, sandbox: Sandbox) -> Intake:
    campaign_id = create_campaign(store, small_spec())
    return Intake(
        campaign_id=campaign_id,
        archive=store,
        ledger=Ledger(),
        sandbox=sandbox,
    )


def _add(intake: Intake, name: str, source: str) -> tuple[int, CandidateStatus, int | None]:
    record = intake.ledger.put_candidate(
        intake.archive.add_candidate(
            campaign_id=intake.campaign_id, name=name, source=source, origin="test", thought=""
        )
    )
    intake.validate(record)
    stored = intake.ledger.candidates[record.id]
    return record.id, stored.status, stored.duplicate_of


def test_rescaled_losses_are_duplicates_and_different_ones_are_not(intake: Intake) -> None:
    dpo, status, _ = _add(intake, "dpo", BASELINES["dpo"].source)
    assert status is CandidateStatus.ACCEPTED
    for name, source in (
        ("dpo_times_1.000003", loss_source(Z, "return -F.logsigmoid(z) * (1 + 3e-6)")),
        ("dpo_times_4_plus_1", loss_source(Z, "return 1.0 - 4.0 * F.logsigmoid(z)")),
    ):
        _, status, original = _add(intake, name, source)
        assert (status, original) == (CandidateStatus.DUPLICATE, dpo), name
    for name, source in (("cdpo", CDPO), ("ipo", BASELINES["ipo"].source)):
        _, status, _ = _add(intake, name, source)
        assert status is CandidateStatus.ACCEPTED, name


def test_an_impostor_first_does_not_make_the_honest_loss_its_duplicate(intake: Intake) -> None:
    impostor, status, _ = _add(intake, "impostor", IMPOSTOR)
    assert status is CandidateStatus.ACCEPTED
    _, status, original = _add(intake, "cdpo", CDPO)
    assert status is CandidateStatus.ACCEPTED, f"filed as a duplicate of {original}"
    assert original != impostor
