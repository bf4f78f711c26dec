"""Errors raised by the archive.

    ArchiveError                   base class; anything the store refuses
    ├── NotFoundError              an id that names no row
    ├── DuplicateEvaluationError   the database refused a second copy of one evaluation
    ├── EvaluationClosedError      a finished evaluation cannot be finished again
    ├── LeaseHeldError             another live engine owns the campaign
    ├── LeaseLostError             this engine's lease was taken over: it must stop writing
    ├── DatabaseUnavailableError   the database did not answer for longer than the retry window
    └── ArchiveOpenError           the archive at the URL cannot be opened (said with the URL)
        ├── ArchiveUnreachableError  no connection: server down, bad host, refused login, bad path
        ├── NotADatabaseError        an SQLite URL naming a file that is not an SQLite database
        └── UnknownRevisionError     a schema revision this lossforge does not know (a newer one)

Messages say what was refused and what to do about it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from discovery.archive.records import Lease


class ArchiveError(Exception):
    """Something the archive refused."""


class NotFoundError(ArchiveError):
    """An id that names no row (a campaign, candidate or evaluation)."""


class DuplicateEvaluationError(ArchiveError):
    """The database refused an evaluation that is already stored.

    Raised when the unique constraint on (candidate_id, stage, task, seed, attempt), or the one on
    finished evaluations of (candidate_id, stage, task, seed), fires. Callers that retry a failed
    evaluation must use a new `attempt` number.
    """


class EvaluationClosedError(ArchiveError):
    """`finish_evaluation` on a row that is no longer PENDING or RUNNING: results are final."""


class LeaseHeldError(ArchiveError):
    """Another engine holds a live lease on the campaign; `lease` says who."""

    def __init__(self, campaign_id: int, lease: Lease) -> None:
        self.campaign_id = campaign_id
        self.lease = lease
        super().__init__(
            f"campaign {campaign_id} is already run by another engine ({lease.describe()}); "
            f"wait for it to stop, or pause it (`lossforge pause {campaign_id}`) and resume it "
            "here once it has stopped"
        )


class LeaseLostError(ArchiveError):
    """A fenced write found that the campaign's lease is no longer this engine's."""


class DatabaseUnavailableError(ArchiveError):
    """Transient database errors went on for longer than the retry window (or the disk is full)."""


class ArchiveOpenError(ArchiveError):
    """The archive cannot be opened. Messages name the URL (never its password) and the fix."""


class ArchiveUnreachableError(ArchiveOpenError):
    """No connection to the database (a server that is down, an unknown host, a refused login, an
    SQLite path that cannot be opened), or a URL naming a database lossforge has no driver for."""


class NotADatabaseError(ArchiveOpenError):
    """An SQLite URL that names a file which is not an SQLite database (or a damaged one)."""


class UnknownRevisionError(ArchiveOpenError):
    """The schema is at a revision this lossforge does not know: a newer lossforge wrote it."""
