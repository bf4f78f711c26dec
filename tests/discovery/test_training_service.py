"""candidate_curves on an archive filled through its API (no Ray, no training): each evaluation's
curves, the held-out flag from the campaign's spec, DPO's run under the same conditions as the
overlay, and NotFoundError for an unknown candidate."""

from __future__ import annotations

import pytest

from discovery.archive import Archive, EvaluationStatus, NotFoundError
from discovery.service.training import candidate_curves
from tests.factories import make_candidate

SPEC = {
    "name": "curves",
    "seed": 0,
    "proposer": {"kind": "evolve"},
    "stages": [{"name": "bandit", "seeds": 1}, {"name": "tinylm", "seeds": 1}],
    "budget": {"candidates": 4},
}


def curves(first_loss: float, steps: tuple[int, ...] = (64, 128)) -> dict[str, list]:
    return {
        "step": list(steps),
        "loss": [first_loss, None],  # None: a non-finite value, stored as null
        "rewards/margins": [0.1, 0.2],
        "kl/ref": [0.01, 0.02],
    }


def store(
    archive: Archive,
    candidate_id: int,
    stage: str,
    task: str,
    *,
    attempt: int = 0,
    status: EvaluationStatus = EvaluationStatus.DONE,
    run_curves: dict[str, list] | None = None,
) -> int:
    """One finished evaluation (seed 0) with `run_curves`; its id."""
    row = archive.add_evaluation(
        candidate_id=candidate_id, stage=stage, task=task, seed=0, attempt=attempt
    )
    reason = None if status is EvaluationStatus.DONE else f"it was {status}"
    archive.finish_evaluation(row.id, status=status, reason=reason, curves=run_curves)
    return row.id


def test_curves_per_evaluation_with_held_out_flag_and_dpo_overlay(archive: Archive) -> None:
    campaign = archive.create_campaign(name="curves", spec=SPEC, seed=0)
    dpo = make_candidate(archive, campaign, name="dpo", origin="baseline")
    mine = make_candidate(archive, campaign, name="mine", origin="evolve")
    # DPO's sorting run: a failed first attempt, then a DONE one (the overlay); no bandit curves.
    store(archive, dpo.id, "tinylm", "sorting", status=EvaluationStatus.LOST, run_curves=curves(9))
    store(archive, dpo.id, "tinylm", "sorting", attempt=1, run_curves=curves(0.69, (1, 2)))
    store(archive, dpo.id, "bandit", "tabular")
    bandit = store(archive, mine.id, "bandit", "tabular", run_curves=curves(0.5))
    sorting = store(archive, mine.id, "tinylm", "sorting", run_curves=curves(0.6))
    sentiment = store(
        archive,
        mine.id,
        "tinylm",
        "sentiment",
        status=EvaluationStatus.NAN_LOSS,
        run_curves=curves(0.7),
    )
    store(archive, mine.id, "tinylm", "reversal")  # no curves: not listed

    got = candidate_curves(archive, mine.id)
    assert [(c.evaluation_id, c.stage, c.task, c.held_out) for c in got] == [
        (bandit, "bandit", "tabular", False),
        (sorting, "tinylm", "sorting", False),
        (sentiment, "tinylm", "sentiment", True),  # held out in the tinylm stage's tasks
    ]
    by_task = {c.task: c for c in got}
    assert by_task["sentiment"].status is EvaluationStatus.NAN_LOSS
    assert by_task["sorting"].steps == [64, 128]
    assert by_task["sorting"].series == {
        "loss": [0.6, None],
        "rewards/margins": [0.1, 0.2],
        "kl/ref": [0.01, 0.02],
    }
    # DPO's DONE attempt under the same stage, task and seed; none where DPO has no curves.
    assert by_task["sorting"].dpo_steps == [1, 2]
    assert by_task["sorting"].dpo is not None and by_task["sorting"].dpo["loss"] == [0.69, None]
    assert by_task["tabular"].dpo is None and by_task["tabular"].dpo_steps is None
    assert by_task["sentiment"].dpo is None

    (own,) = [c for c in candidate_curves(archive, dpo.id) if c.attempt == 1]
    assert own.series["loss"] == [0.69, None] and own.dpo is None  # DPO is not overlaid on itself


def test_an_unknown_candidate_is_not_found(archive: Archive) -> None:
    with pytest.raises(NotFoundError, match="no candidate with id 4242"):
        candidate_curves(archive, 4242)
