"""Retrying what the database failed to do for a moment: a bounded wait, then one clear error.

A PostgreSQL restart, a dropped connection or a busy SQLite file raise `OperationalError` (or a
DBAPI error that invalidated its connection). An engine that runs for hours should ride those
out, so an `Archive` built with `retry_s > 0` re-runs each call with exponential backoff until the
window closes, then raises `DatabaseUnavailableError` with one sentence naming the database (without
its password). A full disk is not waited out: space does not come back by itself mid-campaign.

Every store call is one transaction, so a call that failed wrote nothing and is safe to repeat,
except when the connection dropped after the server committed and before it answered; the
database's unique constraints refuse the repeat then (DuplicateEvaluationError), as they would
a second engine's.

It does not decide what an engine does next (engine.py stops cleanly and leaves the campaign
resumable).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.exc import DBAPIError, OperationalError

from discovery.archive.errors import DatabaseUnavailableError

log = logging.getLogger(__name__)

T = TypeVar("T")

_FIRST_WAIT_S = 0.1
_LONGEST_WAIT_S = 2.0
_DISK_FULL = ("database or disk is full", "no space left on device", "disk full")


def transient(exc: BaseException) -> bool:
    """A failure of the connection or the server, not of the statement."""
    if isinstance(exc, OperationalError):
        return True
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)


def disk_full(exc: BaseException) -> bool:
    text = str(getattr(exc, "orig", None) or exc).lower()
    return any(marker in text for marker in _DISK_FULL)


def _cause(exc: BaseException) -> str:
    first = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return first[0] if first else type(exc).__name__


def call(
    fn: Callable[[], T],
    *,
    seconds: float,
    where: str,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """`fn()`, repeated on transient errors for up to `seconds`; `where` names the database."""
    deadline = clock() + seconds
    wait = _FIRST_WAIT_S
    warned = False
    while True:
        try:
            return fn()
        except DBAPIError as exc:
            if not transient(exc):
                raise
            if disk_full(exc):
                raise DatabaseUnavailableError(
                    f"the disk holding the archive ({where}) is full; nothing half-written was "
                    "kept: free some space, then resume the campaign"
                ) from None
            if clock() + wait > deadline:
                raise DatabaseUnavailableError(
                    f"the archive database ({where}) did not answer for {seconds:g} s "
                    f"({_cause(exc)}); the campaign is left resumable: resume it once the "
                    "database is back"
                ) from None
            if not warned:
                log.warning(
                    "archive database %s unavailable (%s); retrying for up to %g s",
                    where,
                    _cause(exc),
                    seconds,
                )
                warned = True
            sleep(wait)
            wait = min(wait * 2, _LONGEST_WAIT_S)
