"""A candidate's training curves, per evaluation, with DPO's under the same conditions.

`candidate_curves` reads the curves the archive keeps for each of a candidate's evaluations (loss,
`rewards/margins` and `kl/ref` over optimizer steps; see `evaluator.results.training_curves`),
says whether each run's task is held out in its campaign's spec, and pairs each with the DPO
baseline's run of the same stage, task and seed, so a page can draw the two on one plot. A missing
value (a non-finite one, recorded as JSON null) stays None.

It does not train, score or resample anything, and imports nothing heavy (no torch, Ray or
sandbox): the API serves it from the archive alone.
"""

from __future__ import annotations

from dataclasses import dataclass

from discovery.archive import Archive, EvaluationRecord, EvaluationStatus
from discovery.service.leaderboard import held_out_tasks

__all__ = ["SERIES", "EvaluationCurves", "candidate_curves"]

# The series a stage records per step, in the order a page lists them ("step" is the x axis).
SERIES = ("loss", "rewards/margins", "kl/ref")
_STEP = "step"

Series = dict[str, list[float | None]]


@dataclass(frozen=True)
class EvaluationCurves:
    """One evaluation's training curves, and DPO's for the same stage, task and seed."""

    evaluation_id: int
    stage: str
    task: str
    seed: int
    attempt: int
    held_out: bool  # the task is held out in the campaign's spec (a private metric)
    status: EvaluationStatus
    steps: list[int]  # optimizer step of each point (at most 200, the last step included)
    series: Series  # SERIES name -> one value per step, None where it was not finite
    # DPO's run under the same conditions; None when DPO has none with curves, or the
    # candidate is DPO itself.
    dpo: Series | None = None
    dpo_steps: list[int] | None = None


def candidate_curves(archive: Archive, candidate_id: int) -> list[EvaluationCurves]:
    """Every evaluation of the candidate that recorded curves, in the order they were stored.

    Raises discovery.archive.NotFoundError for an unknown candidate."""
    candidate = archive.get_candidate(candidate_id)
    held = held_out_tasks(archive.get_campaign(candidate.campaign_id).spec)
    dpo_runs = _dpo_runs(archive, candidate.campaign_id, candidate_id)
    out = []
    for evaluation in archive.list_evaluations(candidate_id=candidate_id, with_curves=True):
        steps, series = _split(evaluation)
        if not steps:
            continue
        dpo = dpo_runs.get((evaluation.stage, evaluation.task, evaluation.seed))
        dpo_steps, dpo_series = _split(dpo) if dpo is not None else ([], {})
        out.append(
            EvaluationCurves(
                evaluation_id=evaluation.id,
                stage=evaluation.stage,
                task=evaluation.task,
                seed=evaluation.seed,
                attempt=evaluation.attempt,
                held_out=evaluation.task in held.get(evaluation.stage, set()),
                status=evaluation.status,
                steps=steps,
                series=series,
                dpo=dpo_series if dpo_steps else None,
                dpo_steps=dpo_steps or None,
            )
        )
    return out


def _dpo_runs(
    archive: Archive, campaign_id: int, candidate_id: int
) -> dict[tuple[str, str, int], EvaluationRecord]:
    """DPO's run with curves per (stage, task, seed): its DONE attempt where it has one, else its
    latest. Empty when the campaign has no DPO baseline or the candidate is DPO."""
    # The engine stores one DPO baseline per campaign.
    dpo_id = next(
        (
            c.id
            for c in archive.candidate_summaries(campaign_id=campaign_id)
            if c.origin == "baseline" and c.name == "dpo"
        ),
        None,
    )
    runs: dict[tuple[str, str, int], EvaluationRecord] = {}
    if dpo_id is None or dpo_id == candidate_id:
        return runs
    for e in archive.list_evaluations(candidate_id=dpo_id, with_curves=True):
        if not e.curves.get(_STEP):
            continue
        key = (e.stage, e.task, e.seed)
        kept = runs.get(key)
        # Id order: a later attempt replaces an earlier one, unless only the earlier is DONE.
        if kept is None or not (
            kept.status is EvaluationStatus.DONE and e.status is not EvaluationStatus.DONE
        ):
            runs[key] = e
    return runs


def _split(evaluation: EvaluationRecord) -> tuple[list[int], Series]:
    """(steps, the known series) of a stored evaluation's curves; ([], {}) when it has none."""
    curves = evaluation.curves
    steps = [int(s) for s in curves.get(_STEP) or []]
    if not steps:
        return [], {}
    return steps, {name: list(curves[name]) for name in SERIES if name in curves}
