"""A campaign's plot series (schemas.Series): the best score over time at one stage, reward vs KL
per public task with DPO's reward-KL frontier, and which stages have anything to plot.

Reads finished evaluations of the campaign; every number is a mean of stored metrics. The default
stage is the highest one any proposed candidate reached (what the leaderboard ranks first), not
the first stage. Held-out tasks are never plotted here (the page is what a proposer's operator
watches; held-out numbers are on the leaderboard). Values that are not finite are left out.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

from api import schemas
from api.boards import Board
from discovery.archive import (
    Archive,
    CampaignRecord,
    CandidateSummary,
    EvaluationRecord,
    EvaluationStatus,
    NotFoundError,
)
from discovery.service.leaderboard import held_out_tasks
from discovery.spec import parse_spec

_REWARD_METRICS = ("reward/normalized", "reward/mean")  # bandit, tinylm
_KL_METRIC = "kl/ref"
_FRONTIER_PREFIX = "frontier/beta="  # DPO's grid points: frontier/beta=<b>/kl and .../reward
ALL_TASKS = "all"


def default_stage(names: Sequence[str], board: Board) -> str:
    """The highest stage any proposed candidate has a score at; the first stage if none has."""
    reached = {r.stage for r in board.rows if r.origin != "baseline" and r.stage is not None}
    return next((name for name in reversed(names) if name in reached), names[0])


def series(
    archive: Archive, record: CampaignRecord, stage: str | None, board: Board
) -> schemas.Series:
    """Plot data of one stage (None: the default stage, see `default_stage`)."""
    spec = parse_spec(record.spec)
    names = [s.name for s in spec.stages]
    chosen = stage or default_stage(names, board)
    if chosen not in names:
        raise NotFoundError(f"campaign {record.id} has no stage {chosen!r}; its stages: {names}")
    held = held_out_tasks(record.spec).get(chosen, set())
    candidates = {c.id: c for c in archive.candidate_summaries(campaign_id=record.id)}
    done = archive.list_evaluations(campaign_id=record.id, status=EvaluationStatus.DONE)
    finished_stages = {e.stage for e in done}
    evaluations = [e for e in done if e.stage == chosen and e.task not in held]
    reward_metric = _reward_metric(evaluations)
    metric = board.data.metrics.get(chosen, {"name": chosen, "description": chosen})
    return schemas.Series(
        stage=chosen,
        stages=[name for name in names if name in finished_stages],
        metric=schemas.StageMetric(**metric),
        reward_metric=reward_metric,
        kl_metric=_KL_METRIC,
        best_over_time=_best_over_time(record, candidates, evaluations),
        reward_kl=_reward_kl(candidates, evaluations, reward_metric),
        frontier=_frontier(candidates, evaluations),
    )


def _reward_metric(evaluations: Iterable[EvaluationRecord]) -> str:
    present = {name for e in evaluations for name in e.metrics}
    return next((m for m in _REWARD_METRICS if m in present), _REWARD_METRICS[0])


def _number(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def _best_over_time(
    record: CampaignRecord,
    candidates: Mapping[int, CandidateSummary],
    evaluations: Sequence[EvaluationRecord],
) -> list[schemas.BestPoint]:
    """A point each time a proposed candidate's mean score so far beats the best before it.

    Scores here are per run (one task, one seed) averaged over the runs finished by that time,
    so the curve can be drawn from the evaluations alone, in the order they finished.
    """
    runs: dict[int, list[float]] = {}
    best = -math.inf
    points = []
    ordered = sorted(
        (e for e in evaluations if _number(e.score) is not None and e.finished_at is not None),
        key=lambda e: e.finished_at,  # type: ignore[arg-type,return-value]
    )
    for e in ordered:
        candidate = candidates.get(e.candidate_id)
        if candidate is None or candidate.origin == "baseline":
            continue
        runs.setdefault(e.candidate_id, []).append(float(e.score))  # type: ignore[arg-type]
        mean = sum(runs[e.candidate_id]) / len(runs[e.candidate_id])
        if mean > best:
            best = mean
            points.append(
                schemas.BestPoint(
                    time=e.finished_at,  # type: ignore[arg-type]
                    seconds=(e.finished_at - record.created_at).total_seconds(),  # type: ignore[operator]
                    candidate_id=candidate.id,
                    name=candidate.name,
                    score=mean,
                )
            )
    return points


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


def _reward_kl(
    candidates: Mapping[int, CandidateSummary],
    evaluations: Sequence[EvaluationRecord],
    reward_metric: str,
) -> list[schemas.RewardKLPoint]:
    """Per candidate: one point per public task (mean over its seeds), and one for "all"
    (mean over every public run)."""
    runs: dict[int, dict[str, list[tuple[float, float]]]] = {}
    for e in evaluations:
        reward, kl = _number(e.metrics.get(reward_metric)), _number(e.metrics.get(_KL_METRIC))
        if reward is not None and kl is not None:
            by_task = runs.setdefault(e.candidate_id, {})
            by_task.setdefault(e.task, []).append((reward, kl))
            by_task.setdefault(ALL_TASKS, []).append((reward, kl))
    points = []
    for cid, by_task in runs.items():
        candidate = candidates.get(cid)
        if candidate is None:
            continue
        for task, values in sorted(by_task.items()):
            points.append(
                schemas.RewardKLPoint(
                    candidate_id=cid,
                    name=candidate.name,
                    origin=candidate.origin,
                    baseline=candidate.origin == "baseline",
                    task=task,
                    reward=_mean([r for r, _ in values]),
                    kl=_mean([k for _, k in values]),
                )
            )
    return points


def frontier_points(metrics: Mapping[str, object]) -> dict[float, tuple[float, float]]:
    """beta -> (kl, reward) from a DPO run's `frontier/beta=<b>/kl|reward` metrics."""
    found: dict[float, dict[str, float]] = {}
    for key, value in metrics.items():
        number = _number(value)
        if not key.startswith(_FRONTIER_PREFIX) or number is None:
            continue
        beta, _, what = key.removeprefix(_FRONTIER_PREFIX).rpartition("/")
        try:
            found.setdefault(float(beta), {})[what] = number
        except ValueError:
            continue  # not a grid point's metric
    return {b: (v["kl"], v["reward"]) for b, v in found.items() if {"kl", "reward"} <= v.keys()}


def _frontier(
    candidates: Mapping[int, CandidateSummary], evaluations: Sequence[EvaluationRecord]
) -> list[schemas.Frontier]:
    """DPO's frontier per public task: each grid point's mean over seeds, sorted by KL."""
    dpo = {c.id for c in candidates.values() if c.origin == "baseline" and c.name == "dpo"}
    grid: dict[str, dict[float, list[tuple[float, float]]]] = {}
    for e in evaluations:
        if e.candidate_id in dpo:
            for beta, point in frontier_points(e.metrics).items():
                grid.setdefault(e.task, {}).setdefault(beta, []).append(point)
    out = []
    for task, by_beta in sorted(grid.items()):
        points = [
            schemas.FrontierPoint(
                beta=beta, kl=_mean([k for k, _ in values]), reward=_mean([r for _, r in values])
            )
            for beta, values in by_beta.items()
        ]
        out.append(schemas.Frontier(task=task, points=sorted(points, key=lambda p: p.kl)))
    return out
