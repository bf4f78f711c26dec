"""Leaderboards for the API, computed once per change of a campaign rather than once per request.

A leaderboard reads every candidate and evaluation of a campaign (tens of thousands of rows for a
long campaign), far too slow to redo for each of many readers. `Boards` keeps the last one per
campaign with its rows encoded as JSON once, and serves it without touching the database for
`max_age_s`; after that one cheap query (the campaign's stamp: newest event id and status) says
whether it is still current, and it is recomputed only if not. So readers see results at most
`max_age_s` late, a finished campaign's board is computed once, and a busy one at most once per
`max_age_s`. One lock per campaign, so fifty readers arriving together compute it once; while it
is recomputed, the others get the previous board rather than wait.

What a board holds is discovery.service.board_query's (rows with their ranks and islands, the
campaign's lean scores, what each stage's score measures); this module caches it, encodes its
rows for the routers, and serves pages of it sorted and filtered (`BoardQuery`), with per-task
scores computed once per candidate when first asked for.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from discovery.archive import Archive
from discovery.scores import LeaderboardRow, ProxyValidity
from discovery.service.board_query import (
    BoardData,
    BoardQuery,
    RankedRow,
    read_board,
    select,
    task_columns,
    task_scores,
)


@dataclass(frozen=True)
class Board:
    stamp: tuple[int, str]
    data: BoardData
    by_id: dict[int, tuple[int, LeaderboardRow]]  # candidate id -> (rank, row)
    encoded: dict[int, bytes]  # candidate id -> its row as JSON, encoded once for every page
    # candidate id -> its per-task scores as JSON-ready dicts, computed when first asked for
    _tasks: dict[int, dict[str, Any]] = field(default_factory=dict, repr=False)

    @property
    def rows(self) -> list[LeaderboardRow]:
        """The rows in rank order."""
        return [r.row for r in self.data.rows]

    @property
    def validity(self) -> ProxyValidity:
        """Spearman's rho: public vs held-out, and between stages."""
        return self.data.validity

    @property
    def columns(self) -> list[str]:
        """The per-task "stage/task" keys: public tasks first, then held-out."""
        return task_columns(self.data.stages)

    def select(self, query: BoardQuery) -> list[RankedRow]:
        return select(self.data.rows, query, self.data.stages)

    def tasks_of(self, candidate_id: int) -> dict[str, Any]:
        """The candidate's per-task scores ("stage/task" -> score, low, high, n, held_out)."""
        if candidate_id not in self._tasks:
            scores = task_scores(self.data.scores.get(candidate_id, []), self.data.stages)
            self._tasks[candidate_id] = finite({k: v.as_dict() for k, v in scores.items()})
        return self._tasks[candidate_id]

    def page_rows(
        self, query: BoardQuery, *, offset: int, limit: int, tasks: bool = False
    ) -> tuple[int, list[dict[str, Any]]]:
        """(rows after filtering, the page's rows as JSON-ready dicts)."""
        kept = self.select(query)
        page = kept[offset : offset + limit]
        rows = [finite(r.as_dict()) for r in page]
        if tasks:
            for row in rows:
                row["tasks"] = self.tasks_of(row["id"])
        return len(kept), rows

    def page_json(
        self,
        campaign_id: int,
        *,
        offset: int,
        limit: int,
        scored: bool = False,
        query: BoardQuery | None = None,
        tasks: bool = False,
    ) -> bytes:
        """A LeaderboardPage as JSON. Without per-task scores it is joined from the
        pre-encoded rows (the hot path); `scored` keeps only rows with a score."""
        query = query or BoardQuery(scored=scored)
        kept = self.select(query)
        page = kept[offset : offset + limit]
        head = json.dumps(
            {
                "campaign_id": campaign_id,
                "total": len(kept),
                "offset": offset,
                "limit": limit,
                "metrics": self.data.metrics,
                "columns": self.columns if tasks else [],
            }
        )
        if tasks:
            encoded = [
                json.dumps(
                    {**finite(r.as_dict()), "tasks": self.tasks_of(r.row.id)}, allow_nan=False
                ).encode()
                for r in page
            ]
        else:
            encoded = [self.encoded[r.row.id] for r in page]
        return head[:-1].encode() + b', "rows": [' + b",".join(encoded) + b"]}"


class Boards:
    """The latest leaderboard of each campaign, shared by all requests."""

    def __init__(
        self,
        archive: Archive,
        *,
        max_age_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.archive = archive
        self.max_age_s = max_age_s
        self.clock = clock
        self._boards: dict[int, Board] = {}
        self._checked: dict[int, float] = {}  # when each board was last known current
        self._locks: dict[int, threading.Lock] = {}
        self._guard = threading.Lock()

    def peek(self, campaign_id: int) -> Board | None:
        """The board if it is known current (no query, no wait), else None: call `get`."""
        board = self._boards.get(campaign_id)
        if board is not None and self.clock() - self._checked[campaign_id] < self.max_age_s:
            return board
        return None

    def get(self, campaign_id: int) -> Board:
        """The campaign's leaderboard, at most `max_age_s` old; NotFoundError for unknown ids."""
        board = self.peek(campaign_id)
        if board is not None:
            return board  # no query at all: most requests of a busy server end here
        stamp = self.archive.campaign_stamp(campaign_id)
        with self._guard:
            lock = self._locks.setdefault(campaign_id, threading.Lock())
        stale = self._boards.get(campaign_id)
        if stale is not None and not lock.acquire(blocking=False):
            return stale  # another reader is recomputing it: serve the last one meanwhile
        if stale is None:
            lock.acquire()
        try:
            board = self._boards.get(campaign_id)
            if board is None or board.stamp != stamp:
                board = self._compute(campaign_id, stamp)
                self._boards[campaign_id] = board
            self._checked[campaign_id] = self.clock()
            return board
        finally:
            lock.release()

    def _compute(self, campaign_id: int, stamp: tuple[int, str]) -> Board:
        data = read_board(self.archive, campaign_id)
        return Board(
            stamp=stamp,
            data=data,
            by_id={r.row.id: (r.rank, r.row) for r in data.rows},
            encoded={
                r.row.id: json.dumps(finite(r.as_dict()), allow_nan=False).encode()
                for r in data.rows
            },
        )


def finite(value: Any) -> Any:
    """JSON-safe copy: non-finite floats become None, containers are copied recursively."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value
