"""A leaderboard as a reader asks for it: sorted, filtered, with per-task scores, as CSV.

`read_board` reads a campaign once (its spec, candidate summaries and lean scores) and ranks it
(discovery.scores); the API caches what it returns (api/boards.py). The rest are pure functions
over those rows: `select` filters and sorts them, `task_scores` scores one candidate on each task
alone (scores.stage_score with tasks=[task], on the stage's selection seeds, public and held-out
tasks alike), `task_columns` names those columns, `stage_metrics` says what a row's score measures
at each stage, and `to_csv` writes exactly the rows a page shows.

It evaluates nothing and imports nothing heavy (the CLI reads it without torch or Ray).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from discovery.archive import Archive, CandidateSummary, ScoreRecord
from discovery.scores import LeaderboardRow, ProxyValidity, StageTasks, leaderboard, stage_score
from discovery.scores import proxy_validity as _proxy_validity
from discovery.service.leaderboard import campaign_stages
from discovery.spec import CampaignSpec, parse_spec
from evaluator import stage_metric

SortKey = Literal[
    "rank", "score", "held_out", "fresh_held_out", "name", "id", "created", "island", "stage"
]
SORT_KEYS: tuple[str, ...] = SortKey.__args__  # type: ignore[attr-defined]
Order = Literal["asc", "desc"]
# Scores read best first; names, ids, dates, islands and ranks in their natural order.
_DESCENDING_BY_DEFAULT = frozenset({"score", "held_out", "fresh_held_out"})


@dataclass(frozen=True)
class RankedRow:
    """A leaderboard row with its rank on the whole board and what it is filtered by."""

    rank: int
    row: LeaderboardRow
    island: int | None
    created_at: datetime | None

    def as_dict(self) -> dict[str, Any]:
        """The row's JSON fields, in the order the API and the CSV show them."""
        return {"rank": self.rank, **self.row.as_dict(), "island": self.island}


# The header of an empty CSV: a row's fields without a row to read them from.
ROW_FIELDS: tuple[str, ...] = (
    "rank",
    *LeaderboardRow.__dataclass_fields__,
    "island",
)


@dataclass(frozen=True)
class BoardData:
    """One read of a campaign: its ranked rows, proxy validity, stages and lean scores."""

    rows: list[RankedRow]
    validity: ProxyValidity
    stages: list[StageTasks]
    metrics: dict[str, dict[str, str]]  # stage -> {"name", "description"}
    scores: dict[int, list[ScoreRecord]] = field(repr=False)  # candidate id -> its runs


@dataclass(frozen=True)
class BoardQuery:
    """What a reader asks of a leaderboard: a sort and exact filters (None: any)."""

    sort: SortKey = "rank"
    order: Order | None = None  # None: descending for scores, ascending otherwise
    stage: str | None = None
    status: str | None = None
    origin: str | None = None
    confirmation: str | None = None
    island: int | None = None
    q: str | None = None  # case-insensitive substring of the name, or "#<id>"
    scored: bool = False  # only rows with a public or held-out score

    @property
    def descending(self) -> bool:
        return (self.order or ("desc" if self.sort in _DESCENDING_BY_DEFAULT else "asc")) == "desc"


@dataclass(frozen=True)
class TaskScore:
    """A candidate's score vs DPO on one task alone: mean of per-seed differences, 95% interval."""

    score: float | None
    low: float | None
    high: float | None
    n: int
    held_out: bool

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def stage_metrics(spec: CampaignSpec) -> dict[str, dict[str, str]]:
    """Stage name -> what a score vs DPO there measures (`name`, a header; `description`)."""
    out = {}
    for stage in spec.stages:
        name, description = stage_metric(stage.name, stage.config)
        out[stage.name] = {"name": name, "description": description}
    return out


def read_board(archive: Archive, campaign_id: int) -> BoardData:
    """The campaign's leaderboard from one read of its spec, candidates and scores."""
    spec = parse_spec(archive.get_campaign(campaign_id).spec)
    stages = campaign_stages(spec)
    candidates = archive.candidate_summaries(campaign_id=campaign_id)
    scores = archive.campaign_scores(campaign_id=campaign_id)
    by_id: dict[int, CandidateSummary] = {c.id: c for c in candidates}
    by_candidate: dict[int, list[ScoreRecord]] = {}
    for s in scores:
        by_candidate.setdefault(s.candidate_id, []).append(s)
    rows = [
        RankedRow(
            rank=rank,
            row=row,
            island=by_id[row.id].island,
            created_at=by_id[row.id].created_at,
        )
        for rank, row in enumerate(leaderboard(candidates, scores, stages=stages), 1)
    ]
    return BoardData(
        rows=rows,
        validity=_proxy_validity(candidates, scores, stages=stages),
        stages=stages,
        metrics=stage_metrics(spec),
        scores=by_candidate,
    )


def _matches(r: RankedRow, query: BoardQuery, needle: str | None, wanted_id: int | None) -> bool:
    row = r.row
    if query.scored and not row.has_score:
        return False
    exact = (
        (query.stage, row.stage),
        (query.status, row.status),
        (query.origin, row.origin),
        (query.confirmation, row.confirmation),
    )
    for wanted, value in exact:
        if wanted is not None and (value or "").lower() != wanted.lower():
            return False
    if query.island is not None and r.island != query.island:
        return False
    if wanted_id is not None:
        return row.id == wanted_id
    return needle is None or needle in row.name.lower()


def _sort_value(r: RankedRow, key: str, stage_order: Mapping[str, int]) -> Any:
    row = r.row
    return {
        "rank": r.rank,
        "score": row.score,
        "held_out": row.held_out_score,
        "fresh_held_out": row.fresh_held_out_score,
        "name": row.name.lower(),
        "id": row.id,
        "created": (r.created_at, row.id) if r.created_at is not None else None,
        "island": r.island,
        "stage": stage_order.get(row.stage, -1) if row.stage is not None else None,
    }[key]


def select(
    rows: Sequence[RankedRow], query: BoardQuery, stages: Sequence[StageTasks] = ()
) -> list[RankedRow]:
    """The rows `query` keeps, in its order. Rows without a value for the sort key come last
    in either order; ties keep the board's rank order."""
    text = (query.q or "").strip()
    wanted_id = int(text[1:]) if text.startswith("#") and text[1:].isdigit() else None
    needle = text.lower() or None
    kept = [r for r in rows if _matches(r, query, needle, wanted_id)]
    if query.sort == "rank" and not query.descending:
        return kept  # the board's own order: the common request costs no sort
    stage_order = {s.name: i for i, s in enumerate(stages)}
    keyed = [(_sort_value(r, query.sort, stage_order), r) for r in kept]  # kept is in rank order
    present = [(value, r) for value, r in keyed if value is not None]
    missing = [r for value, r in keyed if value is None]
    # A stable sort on the value alone: ties keep the rank order they came in.
    present.sort(key=lambda pair: pair[0], reverse=query.descending)
    return [r for _, r in present] + missing


def task_columns(stages: Sequence[StageTasks]) -> list[str]:
    """The "stage/task" keys: every stage's public tasks first, then the held-out ones."""
    public = [f"{s.name}/{t}" for s in stages for t in s.public]
    held = [f"{s.name}/{t}" for s in stages for t in s.held_out]
    return public + held


def task_scores(
    evaluations: Sequence[ScoreRecord], stages: Sequence[StageTasks]
) -> dict[str, TaskScore]:
    """One candidate's score on each task alone ("stage/task" -> TaskScore), on the stage's
    selection seeds (a stage without public tasks selects nothing: all its seeds)."""
    out: dict[str, TaskScore] = {}
    for s in stages:
        for tasks, held in ((s.public, False), (s.held_out, True)):
            seeds = s.selection() if s.public else None
            for task in tasks:
                score = stage_score(evaluations, stage=s.name, tasks=[task], seeds=seeds)
                out[f"{s.name}/{task}"] = TaskScore(
                    score=score.score, low=score.low, high=score.high, n=score.seeds, held_out=held
                )
    return out


def csv_header(row_fields: Iterable[str], columns: Sequence[str]) -> list[str]:
    """The row fields in their JSON order, then each task's score, low, high and n."""
    extra = [f"{c}{suffix}" for c in columns for suffix in ("", " low", " high", " n")]
    return [*row_fields, *extra]


def to_csv(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """Rows (JSON dicts, with `tasks` when `columns` is not empty) as CSV text; null is empty."""
    fields = [k for k in (rows[0] if rows else ROW_FIELDS) if k != "tasks"]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(csv_header(fields, columns))
    for row in rows:
        values = [row[k] for k in fields]
        tasks = row.get("tasks") or {}
        for column in columns:
            cell = tasks.get(column) or {}
            values += [cell.get("score"), cell.get("low"), cell.get("high"), cell.get("n")]
        writer.writerow(["" if v is None else v for v in values])
    return out.getvalue()
