"""Errors raised by the archive.

    ArchiveError                 base class; anything the store refuses
    ├── NotFoundError            an id that names no row
    └── DuplicateEvaluationError the database refused a second copy of one evaluation

Messages say what was refused and what to do about it.
"""


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
