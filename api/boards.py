"""Leaderboards for the API, computed once per change of a campaign rather than once per request.

A leaderboard reads every candidate and evaluation of a campaign (tens of thousands of rows for a
long campaign), far too slow to redo for each of many readers. `Boards` keeps the last one per
campaign with its rows encoded as JSON once, and serves it without touching the database for
`max_age_s`; after that one cheap query (the campaign's stamp: newest event id and status) says
whether it is still current, and it is recomputed only if not. So readers see results at most
`max_age_s` late, a finished campaign's board is computed once, and a busy one at most once per
`max_age_s`. One lock per campaign, so fifty readers arriving together compute it once; while it
is recomputed, the others get the previous board rather than wait.

What a board holds is discovery.service.leaderboard's; this module only caches it and encodes
its rows for the routers.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from discovery.archive import Archive
from discovery.scores import LeaderboardRow, ProxyValidity
from discovery.service.leaderboard import campaign_report


@dataclass(frozen=True)
class Board:
    stamp: tuple[int, str]
    rows: list[LeaderboardRow]
    validity: ProxyValidity  # Spearman's rho: public vs held-out, and between stages
    by_id: dict[int, tuple[int, LeaderboardRow]]  # candidate id -> (rank, row)
    encoded: list[bytes]  # each row as JSON with its rank, encoded once for every page served
    scored: list[bytes]  # the encoded rows with a score, public or held-out (their ranks kept)

    def page_json(
        self, campaign_id: int, *, offset: int, limit: int, scored: bool = False
    ) -> bytes:
        """A LeaderboardPage as JSON, joined from the pre-encoded rows (`scored`: only those
        with a score)."""
        encoded = self.scored if scored else self.encoded
        head = json.dumps(
            {"campaign_id": campaign_id, "total": len(encoded), "offset": offset, "limit": limit}
        )
        rows = b",".join(encoded[offset : offset + limit])
        return head[:-1].encode() + b', "rows": [' + rows + b"]}"


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
        rows, validity = campaign_report(self.archive, campaign_id)
        ranked = [dict(rank=rank, **row.as_dict()) for rank, row in enumerate(rows, 1)]
        encoded = [json.dumps(finite(r), allow_nan=False).encode() for r in ranked]
        return Board(
            stamp=stamp,
            rows=rows,
            validity=validity,
            by_id={row.id: (rank, row) for rank, row in enumerate(rows, 1)},
            encoded=encoded,
            scored=[e for e, row in zip(encoded, rows, strict=True) if row.has_score],
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
