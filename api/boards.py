"""Leaderboards for the API, computed once per change of a campaign rather than once per request.

A leaderboard reads every candidate and evaluation of a campaign (tens of thousands of rows for a
long campaign), far too slow to redo for each of many readers. `Boards` keeps the last one per
campaign, keyed by the campaign's stamp (newest event id and status, one indexed query): a
finished campaign's board is computed once; a running campaign's is recomputed when its stamp
moved and the cached copy is older than `max_age_s` (so a busy campaign costs at most one
computation per `max_age_s`, and readers see results at most that late). One lock per campaign,
so fifty readers arriving together compute it once.

Also the campaign's stage layout (public and held-out tasks), which the series and candidate
views need. It does not serialize anything; the routers do.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from discovery.archive import Archive
from discovery.runner import campaign_leaderboard
from discovery.scores import LeaderboardRow
from discovery.spec import parse_spec
from evaluator.compare import stage_tasks


@dataclass(frozen=True)
class Board:
    stamp: tuple[int, str]
    computed_at: float
    rows: list[LeaderboardRow]
    by_id: dict[int, tuple[int, LeaderboardRow]]  # candidate id -> (rank, row)


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
        self._locks: dict[int, threading.Lock] = {}
        self._guard = threading.Lock()

    def get(self, campaign_id: int) -> Board:
        """The campaign's leaderboard; NotFoundError for unknown ids."""
        stamp = self.archive.campaign_stamp(campaign_id)
        board = self._boards.get(campaign_id)
        if board is not None and self._fresh(board, stamp):
            return board
        with self._guard:
            lock = self._locks.setdefault(campaign_id, threading.Lock())
        with lock:
            board = self._boards.get(campaign_id)
            if board is not None and self._fresh(board, stamp):
                return board  # another reader computed it while this one waited
            rows = campaign_leaderboard(self.archive, campaign_id)
            board = Board(
                stamp=stamp,
                computed_at=self.clock(),
                rows=rows,
                by_id={row.id: (rank, row) for rank, row in enumerate(rows, 1)},
            )
            self._boards[campaign_id] = board
            return board

    def _fresh(self, board: Board, stamp: tuple[int, str]) -> bool:
        return board.stamp == stamp or self.clock() - board.computed_at < self.max_age_s


def held_out_tasks(spec: dict[str, object]) -> dict[str, set[str]]:
    """Stage name -> its held-out tasks, from a stored campaign spec."""
    parsed = parse_spec(spec)
    return {
        stage.name: {t for t, held in stage_tasks(stage.name, stage.config).items() if held}
        for stage in parsed.stages
    }
