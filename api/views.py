"""Archive records turned into the API's shapes (schemas.py): campaigns and candidates (plot
series are plots.py's).

Reads only; every number comes from stored evaluations. Values that JSON cannot carry (NaN, inf
in a failed run's metrics) become null rather than an error.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from api import render, schemas
from api.boards import Board, Boards, finite
from discovery import control
from discovery.archive import (
    Archive,
    CampaignRecord,
    CampaignStatus,
    CandidateRecord,
    CandidateStatus,
    EvaluationRecord,
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
    baselines = archive.count_baselines_by_campaign()
    return [
        schemas.Campaign(
            **_campaign_fields(
                r,
                running=running(r.id),
                counts=counts.get(r.id, {}),
                baselines=baselines.get(r.id, 0),
            )
        )
        for r in archive.list_campaigns()
    ]


def campaign(archive: Archive, record: CampaignRecord, *, running: bool) -> schemas.Campaign:
    counts = archive.count_candidates(campaign_id=record.id)
    baselines = archive.count_baselines_by_campaign(record.id).get(record.id, 0)
    return schemas.Campaign(
        **_campaign_fields(record, running=running, counts=counts, baselines=baselines)
    )


def campaign_detail(
    archive: Archive, record: CampaignRecord, *, running: bool, board: Board
) -> schemas.CampaignDetail:
    return schemas.CampaignDetail(
        **_campaign_fields(
            record,
            running=running,
            counts=archive.count_candidates(campaign_id=record.id),
            baselines=sum(r.origin == "baseline" for r in board.rows),
        ),
        spec=record.spec,
        stages=[s.name for s in parse_spec(record.spec).stages],
        best=_best(board),
        confirmed=sum(r.origin != "baseline" and r.confirmation == "confirmed" for r in board.rows),
        validity=schemas.ProxyValidity(**finite(board.validity.as_dict())),
        live=_live(record.live),
        actions=actions(record.status),
    )


def actions(status: CampaignStatus) -> schemas.Actions:
    """Which controls a campaign in `status` accepts (discovery/control.py's rules)."""
    return schemas.Actions(**control.allowed_actions(status))


def _live(live: Mapping[str, Any] | None) -> schemas.LiveState | None:
    if not live:
        return None
    return schemas.LiveState(
        phase=live.get("phase"),
        queue_depth=live.get("queue_depth"),
        in_flight=live.get("in_flight"),
        updated_at=live.get("updated_at"),
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
    record: CampaignRecord, *, running: bool, counts: Mapping[CandidateStatus, int], baselines: int
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
        "proposed": sum(counts.values()) - baselines,
        "baselines": baselines,
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


def leaderboard_row(
    rank: int, row: LeaderboardRow, *, island: int | None = None
) -> schemas.LeaderboardRow:
    return schemas.LeaderboardRow(rank=rank, island=island, **finite(row.as_dict()))


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
    board = boards.get(record.campaign_id)
    ranked = board.by_id.get(record.id)
    return schemas.CandidateDetail(
        id=record.id,
        campaign_id=record.campaign_id,
        name=record.name,
        thought=record.thought,
        origin=record.origin,
        status=str(record.status),
        summary=summary(record, ranked[1] if ranked else None, board.data.metrics),
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
        row=leaderboard_row(*ranked, island=record.island) if ranked is not None else None,
    )


_WAITING = {
    CandidateStatus.PROPOSED: "proposed: waiting for the sandbox",
    CandidateStatus.ACCEPTED: "accepted by the sandbox: waiting for or in evaluation",
}


def summary(
    record: CandidateRecord, row: LeaderboardRow | None, metrics: Mapping[str, Mapping[str, str]]
) -> str:
    """One line that is true for the candidate's status (a duplicate was never trained, so its
    sandbox verdict "accepted" is not the line to show)."""
    status = record.status
    if status is CandidateStatus.DUPLICATE:
        of = (
            f"#{record.duplicate_of}" if record.duplicate_of is not None else "an earlier candidate"
        )
        return f"duplicate of {of} (same behaviour): not trained"
    if status is CandidateStatus.REJECTED:
        return f"rejected by the sandbox: {record.reason or 'no reason recorded'}"
    if status in _WAITING:
        return _WAITING[status]
    if status in (CandidateStatus.FAILED, CandidateStatus.UNSCORED):
        return f"{str(status).lower()}: {record.reason or 'no reason recorded'}"
    if row is not None and row.stage is not None and row.score is not None:
        metric = metrics.get(row.stage, {}).get("name", "score vs DPO")
        return (
            f"evaluated up to {row.stage}: {row.score:+.4f} ({metric}, {row.seeds} seeds), "
            f"{row.confirmation}"
        )
    return "evaluated: no score vs DPO yet"


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
