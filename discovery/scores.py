"""Candidate scores at a stage, read from stored evaluations, and the leaderboard built on them.

A stage score is the mean over seeds of the per-seed score vs DPO averaged over the stage's public
tasks (held-out tasks are scored separately and never used for selection or shown to a proposer);
the spread is the standard deviation over seeds. A seed counts only when every public task of
it finished. `public_metrics` gives the raw metrics a proposer may see, from public tasks only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from discovery.archive import (
    CandidateRecord,
    CandidateSummary,
    EvaluationRecord,
    EvaluationStatus,
    ScoreRecord,
)
from evaluator.scoring import StageScore, aggregate

# Full records, or the lean ones a leaderboard reads (the same fields where these functions look).
Scored = EvaluationRecord | ScoreRecord


def stage_score(evaluations: Sequence[Scored], *, stage: str, tasks: Sequence[str]) -> StageScore:
    """Score over `tasks` at `stage` from one candidate's evaluations."""
    by_seed: dict[int, dict[str, float]] = {}
    for e in evaluations:
        done = e.status is EvaluationStatus.DONE and e.score is not None
        if done and e.stage == stage and e.task in tasks:
            by_seed.setdefault(e.seed, {})[e.task] = e.score
    per_seed = [
        sum(scores.values()) / len(scores)
        for scores in by_seed.values()
        if set(scores) == set(tasks)
    ]
    return aggregate(per_seed)


def public_metrics(
    evaluations: Sequence[EvaluationRecord], *, public_tasks: Mapping[str, Sequence[str]]
) -> dict[str, float]:
    """Each metric's mean over a candidate's finished runs on public tasks, keyed "stage/metric".

    `public_tasks` maps each stage to its public tasks; runs of any other task (the held-out ones)
    or stage are left out, so nothing private can reach a proposer through these numbers.
    Non-finite values are skipped.
    """
    sums: dict[str, list[float]] = {}
    for e in evaluations:
        if e.status is not EvaluationStatus.DONE or e.task not in public_tasks.get(e.stage, ()):
            continue
        for name, value in e.metrics.items():
            if isinstance(value, int | float) and math.isfinite(value):
                sums.setdefault(f"{e.stage}/{name}", []).append(float(value))
    return {name: sum(values) / len(values) for name, values in sorted(sums.items())}


@dataclass(frozen=True)
class LeaderboardRow:
    id: int
    name: str
    origin: str
    stage: str | None  # highest stage with a score; None if none yet
    score: float | None  # vs DPO at that stage (public tasks)
    spread: float
    seeds: int
    # vs DPO on the held-out tasks of the highest stage that scored any (that stage, or a later
    # stage whose tasks are all held out)
    held_out_score: float | None
    status: str

    def as_dict(self) -> dict[str, object]:
        return dict(self.__dict__)

    @property
    def has_score(self) -> bool:
        """Scored vs DPO on public or held-out tasks (not rejected, duplicate, failed or
        still waiting)."""
        return self.score is not None or self.held_out_score is not None


def leaderboard(
    candidates: Sequence[CandidateRecord | CandidateSummary],
    evaluations: Sequence[Scored],
    *,
    stages: Sequence[tuple[str, list[str], list[str]]],  # (stage, public tasks, held-out tasks)
) -> list[LeaderboardRow]:
    """Rows ranked by highest stage reached, then score vs DPO."""
    by_candidate: dict[int, list[Scored]] = {}
    for e in evaluations:
        by_candidate.setdefault(e.candidate_id, []).append(e)
    rows = []
    for c in candidates:
        evals = by_candidate.get(c.id, [])
        stage, score, held_score = None, StageScore(None, 0.0, 0), None
        for name, public, held_out in stages:
            public_score = stage_score(evals, stage=name, tasks=public) if public else None
            if public_score is not None and public_score.score is not None:
                stage, score = name, public_score
            # A stage with only held-out tasks (hf on IMDb) has no public score; its held-out
            # score still shows.
            held = stage_score(evals, stage=name, tasks=held_out).score if held_out else None
            if held is not None:
                held_score = held
        rows.append(
            LeaderboardRow(
                id=c.id,
                name=c.name,
                origin=c.origin,
                stage=stage,
                score=score.score,
                spread=score.spread,
                seeds=score.seeds,
                held_out_score=held_score,
                status=str(c.status),
            )
        )
    order = {stage: i for i, (stage, _, _) in enumerate(stages)}
    rows.sort(
        key=lambda r: (
            order.get(r.stage, -1) if r.stage else -1,
            r.score if r.score is not None else float("-inf"),
        ),
        reverse=True,
    )
    return rows
