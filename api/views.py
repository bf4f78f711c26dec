"""Archive records turned into the API's shapes (schemas.py): campaigns, candidates, plot series.

Reads only; every number comes from stored evaluations. Values that JSON cannot carry (NaN, inf
in a failed run's metrics) become null rather than an error.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from api import render, schemas
from api.boards import Board, Boards, finite
from discovery.archive import (
    Archive,
    CampaignRecord,
    CandidateRecord,
    CandidateStatus,
    CandidateSummary,
    EvaluationRecord,
    EvaluationStatus,
    NotFoundError,
)
from discovery.scores import LeaderboardRow
from discovery.service.leaderboard import held_out_tasks
from discovery.spec import parse_spec

_REWARD_METRICS = ("reward/normalized", "reward/mean")  # bandit, tinylm
_KL_METRIC = "kl/ref"
_LINEAGE_DEPTH = 8


def campaigns(archive: Archive, *, running: Callable[[int], bool]) -> list[schemas.Campaign]:
    """Every campaign, newest first, with their candidate counts read in one query."""
    counts = archive.count_candidates_by_campaign()
    return [
        schemas.Campaign(**_campaign_fields(r, running=running(r.id), counts=counts.get(r.id, {})))
        for r in archive.list_campaigns()
    ]


def campaign(archive: Archive, record: CampaignRecord, *, running: bool) -> schemas.Campaign:
    counts = archive.count_candidates(campaign_id=record.id)
    return schemas.Campaign(**_campaign_fields(record, running=running, counts=counts))


def campaign_detail(
    archive: Archive, record: CampaignRecord, *, running: bool, board: Board
) -> schemas.CampaignDetail:
    return schemas.CampaignDetail(
        **_campaign_fields(
            record, running=running, counts=archive.count_candidates(campaign_id=record.id)
        ),
        spec=record.spec,
        stages=[s.name for s in parse_spec(record.spec).stages],
        best=_best(board),
        confirmed=sum(r.origin != "baseline" and r.confirmation == "confirmed" for r in board.rows),
        validity=schemas.ProxyValidity(**finite(board.validity.as_dict())),
    )


def _best(board: Board) -> schemas.Best | None:
    """The first proposed candidate of the leaderboard that has a score."""
    for row in board.rows:
        if row.origin != "baseline" and row.stage is not None and row.score is not None:
            return schemas.Best(
                candidate_id=row.id,
                name=row.name,
                stage=row.stage,
                score=row.score,
                spread=row.spread,
            )
    return None


def _campaign_fields(
    record: CampaignRecord, *, running: bool, counts: Mapping[CandidateStatus, int]
) -> dict[str, Any]:
    spec_budget = record.spec.get("budget", {}) if isinstance(record.spec, dict) else {}
    return {
        "id": record.id,
        "name": record.name,
        "status": str(record.status),
        "reason": record.reason,
        "seed": record.seed,
        "created_at": record.created_at,
        "updated_at": record.updated_at,
        "finished_at": record.finished_at,
        "budget": schemas.Budget(
            used=finite({k: float(v) for k, v in (record.budget_used or {}).items()}),
            limits={k: float(v) for k, v in spec_budget.items() if v is not None},
        ),
        "counts": {str(k): v for k, v in counts.items()},
        "running": running,
        "owner": _owner(record),
    }


def _owner(record: CampaignRecord) -> schemas.Owner | None:
    lease = record.lease
    if lease is None:
        return None
    return schemas.Owner(
        host=lease.host,
        pid=lease.pid,
        since=lease.since,
        heartbeat=lease.heartbeat,
        expired=lease.expired,
    )


def leaderboard_row(rank: int, row: LeaderboardRow) -> schemas.LeaderboardRow:
    return schemas.LeaderboardRow(rank=rank, **finite(row.as_dict()))


def candidate_detail(
    archive: Archive, record: CandidateRecord, boards: Boards
) -> schemas.CandidateDetail:
    campaign_record = archive.get_campaign(record.campaign_id)
    held = held_out_tasks(campaign_record.spec)
    lineage = _lineage(archive, record)
    diff = None
    if record.parent_ids:
        parent = next((a for a in lineage if a[0].id == record.parent_ids[0]), None)
        if parent is not None:
            diff = render.code_diff(
                parent[0].source,
                record.source,
                parent=f"#{parent[0].id} {parent[0].name}",
                child=f"#{record.id} {record.name}",
            )
    ranked = boards.get(record.campaign_id).by_id.get(record.id)
    return schemas.CandidateDetail(
        id=record.id,
        campaign_id=record.campaign_id,
        name=record.name,
        thought=record.thought,
        origin=record.origin,
        status=str(record.status),
        reason=record.reason,
        source=record.source,
        canonical_code=record.canonical_code,
        code_html=render.code_html(record.source),
        parent_ids=record.parent_ids,
        diff=diff,
        lineage=[
            schemas.Ancestor(
                id=a.id,
                name=a.name,
                origin=a.origin,
                status=str(a.status),
                parent_ids=a.parent_ids,
                depth=depth,
            )
            for a, depth in lineage
        ],
        duplicate_of=record.duplicate_of,
        island=record.island,
        verdict=finite(record.verdict) if record.verdict is not None else None,
        provenance=finite(record.provenance),
        created_at=record.created_at,
        evaluations=[
            _evaluation(e, held_out=e.task in held.get(e.stage, set()))
            for e in archive.list_evaluations(candidate_id=record.id)
        ],
        row=leaderboard_row(*ranked) if ranked is not None else None,
    )


def _evaluation(e: EvaluationRecord, *, held_out: bool) -> schemas.EvaluationOut:
    metrics = {
        str(k): finite(v)
        for k, v in e.metrics.items()
        if v is None or isinstance(v, int | float | str | bool)
    }
    return schemas.EvaluationOut(
        id=e.id,
        stage=e.stage,
        task=e.task,
        seed=e.seed,
        attempt=e.attempt,
        status=str(e.status),
        score=finite(e.score),
        metrics=metrics,
        timings={
            str(k): finite(float(v)) for k, v in e.timings.items() if isinstance(v, int | float)
        },
        reason=e.reason,
        held_out=held_out,
        created_at=e.created_at,
        finished_at=e.finished_at,
    )


def _lineage(archive: Archive, record: CandidateRecord) -> list[tuple[CandidateRecord, int]]:
    """Ancestors breadth first (parents at depth 1), each once, up to a depth cap: one query
    per generation. A parent from a deleted campaign is left out, and its line stops there."""
    seen: set[int] = {record.id}
    out: list[tuple[CandidateRecord, int]] = []
    frontier = [pid for pid in dict.fromkeys(record.parent_ids) if pid not in seen]
    for depth in range(1, _LINEAGE_DEPTH + 1):
        if not frontier:
            break
        seen.update(frontier)
        found = archive.get_candidates(frontier)
        parents = [found[pid] for pid in frontier if pid in found]  # in the children's order
        out.extend((parent, depth) for parent in parents)
        following = (pid for parent in parents for pid in parent.parent_ids)
        frontier = [pid for pid in dict.fromkeys(following) if pid not in seen]
    return out


def series(archive: Archive, record: CampaignRecord, stage: str | None) -> schemas.Series:
    """Plot data of one stage: the best proposed score over time, and reward vs KL."""
    spec = parse_spec(record.spec)
    names = [s.name for s in spec.stages]
    chosen = stage or names[0]
    if chosen not in names:
        raise NotFoundError(f"campaign {record.id} has no stage {chosen!r}; its stages: {names}")
    held = held_out_tasks(record.spec).get(chosen, set())
    candidates = {c.id: c for c in archive.candidate_summaries(campaign_id=record.id)}
    evaluations = [
        e
        for e in archive.list_evaluations(campaign_id=record.id, status=EvaluationStatus.DONE)
        if e.stage == chosen and e.task not in held
    ]
    reward_metric = _reward_metric(evaluations)
    return schemas.Series(
        stage=chosen,
        reward_metric=reward_metric,
        kl_metric=_KL_METRIC,
        best_over_time=_best_over_time(record, candidates, evaluations),
        reward_kl=_reward_kl(candidates, evaluations, reward_metric),
    )


def _reward_metric(evaluations: Iterable[EvaluationRecord]) -> str:
    present = {name for e in evaluations for name in e.metrics}
    return next((m for m in _REWARD_METRICS if m in present), _REWARD_METRICS[0])


def _best_over_time(
    record: CampaignRecord,
    candidates: dict[int, CandidateSummary],
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
        (e for e in evaluations if e.score is not None and e.finished_at is not None),
        key=lambda e: e.finished_at,  # type: ignore[arg-type,return-value]
    )
    for e in ordered:
        candidate = candidates.get(e.candidate_id)
        if candidate is None or candidate.origin == "baseline" or not math.isfinite(e.score):  # type: ignore[arg-type]
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


def _reward_kl(
    candidates: dict[int, CandidateSummary],
    evaluations: Sequence[EvaluationRecord],
    reward_metric: str,
) -> list[schemas.RewardKLPoint]:
    sums: dict[int, list[tuple[float, float]]] = {}
    for e in evaluations:
        reward, kl = e.metrics.get(reward_metric), e.metrics.get(_KL_METRIC)
        numbers = isinstance(reward, int | float) and isinstance(kl, int | float)
        if numbers and math.isfinite(reward) and math.isfinite(kl):
            sums.setdefault(e.candidate_id, []).append((float(reward), float(kl)))
    points = []
    for cid, values in sums.items():
        candidate = candidates.get(cid)
        if candidate is None:
            continue
        points.append(
            schemas.RewardKLPoint(
                candidate_id=cid,
                name=candidate.name,
                origin=candidate.origin,
                baseline=candidate.origin == "baseline",
                reward=sum(r for r, _ in values) / len(values),
                kl=sum(k for _, k in values) / len(values),
            )
        )
    return points
