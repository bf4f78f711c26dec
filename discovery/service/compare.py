"""Candidates side by side: per-task scores vs DPO with their 95% intervals, and mean reward and
KL per task, for two to six candidates (of one campaign or several).

Per-task scores are the leaderboard's statistic on one task alone (scores.stage_score with
tasks=[task], on the stage's selection seeds; a stage without public tasks: all its seeds), so a
compare view and the leaderboard's per-task columns agree. It reads the candidates, their
campaigns' specs and their evaluations; it renders no diff (the API does, api/render.py) and
evaluates nothing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from discovery.archive import Archive, CandidateRecord, EvaluationRecord, EvaluationStatus
from discovery.scores import StageTasks, stage_score
from discovery.service.leaderboard import campaign_stages
from discovery.spec import parse_spec

MIN_CANDIDATES, MAX_CANDIDATES = 2, 6
_REWARD_METRICS = ("reward/normalized", "reward/mean")  # bandit, tinylm (and hf)
_KL_METRIC = "kl/ref"


class CompareError(ValueError):
    """Not a comparison: too few or too many candidates."""


@dataclass(frozen=True)
class TaskResult:
    stage: str
    task: str
    held_out: bool
    score: float | None  # mean of per-seed differences to DPO on this task
    low: float | None
    high: float | None
    n: int
    reward: float | None  # mean over its finished runs of the task
    kl: float | None


@dataclass(frozen=True)
class Compared:
    candidate: CandidateRecord
    tasks: list[TaskResult]


def check_count(ids: Sequence[int]) -> list[int]:
    """The ids in order; CompareError unless there are 2 to 6 of them (one id twice is allowed:
    a candidate against itself shows an empty diff, as a control)."""
    if not MIN_CANDIDATES <= len(ids) <= MAX_CANDIDATES:
        raise CompareError(
            f"compare {MIN_CANDIDATES} to {MAX_CANDIDATES} candidates; {len(ids)} given"
        )
    return list(ids)


def _mean_metric(runs: Sequence[EvaluationRecord], names: Sequence[str]) -> float | None:
    for name in names:
        values = [
            float(v)
            for e in runs
            if isinstance(v := e.metrics.get(name), int | float)
            and not isinstance(v, bool)
            and math.isfinite(v)
        ]
        if values:
            return sum(values) / len(values)
    return None


def task_results(
    evaluations: Sequence[EvaluationRecord], stages: Sequence[StageTasks]
) -> list[TaskResult]:
    """Each task of each stage the candidate has finished runs at, public tasks first."""
    out = []
    ran = {(e.stage, e.task) for e in evaluations if e.status is EvaluationStatus.DONE}
    for s in stages:
        seeds = s.selection() if s.public else None
        for tasks, held in ((s.public, False), (s.held_out, True)):
            for task in tasks:
                if (s.name, task) not in ran:
                    continue
                score = stage_score(evaluations, stage=s.name, tasks=[task], seeds=seeds)
                runs = [
                    e
                    for e in evaluations
                    if e.status is EvaluationStatus.DONE and e.stage == s.name and e.task == task
                ]
                out.append(
                    TaskResult(
                        stage=s.name,
                        task=task,
                        held_out=held,
                        score=score.score,
                        low=score.low,
                        high=score.high,
                        n=score.seeds,
                        reward=_mean_metric(runs, _REWARD_METRICS),
                        kl=_mean_metric(runs, (_KL_METRIC,)),
                    )
                )
    return out


def compare(archive: Archive, ids: Sequence[int]) -> list[Compared]:
    """The candidates in the order given, with their per-task results. CompareError for a
    count outside 2..6; NotFoundError naming the first id that does not exist."""
    wanted = check_count(ids)
    found = archive.get_candidates(set(wanted))
    missing = [i for i in wanted if i not in found]
    if missing:
        # Through the archive's own error, so the API answers 404 as for any unknown id.
        archive.get_candidate(missing[0])
    stages: dict[int, list[StageTasks]] = {}
    out = []
    for cid in wanted:
        candidate = found[cid]
        if candidate.campaign_id not in stages:
            spec = archive.get_campaign(candidate.campaign_id).spec
            stages[candidate.campaign_id] = campaign_stages(parse_spec(spec))
        evaluations = archive.list_evaluations(candidate_id=cid)
        out.append(Compared(candidate, task_results(evaluations, stages[candidate.campaign_id])))
    return out
