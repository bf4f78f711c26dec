"""The SQL archive: every campaign, candidate, evaluation, LLM call and event.

Public surface: `open_archive` (engine + migrations + store in one call), the `Archive` store and
its plain-data records. Nothing outside this package writes SQL. It does not decide anything about
campaigns: it stores what the engine tells it and refuses what would break its invariants (an
evaluation stored twice).
"""

from discovery.archive.db import DEFAULT_DATABASE_URL, create_archive_engine, normalize_url
from discovery.archive.errors import (
    ArchiveError,
    ArchiveOpenError,
    ArchiveUnreachableError,
    DatabaseUnavailableError,
    DuplicateEvaluationError,
    EvaluationClosedError,
    LeaseHeldError,
    LeaseLostError,
    NotADatabaseError,
    NotFoundError,
    UnknownRevisionError,
)
from discovery.archive.migrate import current_revision, downgrade, head_revision, upgrade
from discovery.archive.records import (
    CampaignRecord,
    CampaignStatus,
    CandidateRecord,
    CandidateStatus,
    CandidateSummary,
    EvaluationRecord,
    EvaluationStatus,
    EventRecord,
    Lease,
    LLMCall,
    LLMCallRecord,
    NewEvent,
    ScoreRecord,
)
from discovery.archive.store import DEFAULT_LEASE_TTL_S, Archive, open_archive

__all__ = [
    "DEFAULT_DATABASE_URL",
    "DEFAULT_LEASE_TTL_S",
    "Archive",
    "ArchiveError",
    "ArchiveOpenError",
    "ArchiveUnreachableError",
    "CampaignRecord",
    "CampaignStatus",
    "CandidateRecord",
    "CandidateStatus",
    "CandidateSummary",
    "DatabaseUnavailableError",
    "DuplicateEvaluationError",
    "EvaluationClosedError",
    "EvaluationRecord",
    "EvaluationStatus",
    "EventRecord",
    "LLMCall",
    "LLMCallRecord",
    "Lease",
    "LeaseHeldError",
    "LeaseLostError",
    "NewEvent",
    "NotADatabaseError",
    "NotFoundError",
    "ScoreRecord",
    "UnknownRevisionError",
    "create_archive_engine",
    "current_revision",
    "downgrade",
    "head_revision",
    "normalize_url",
    "open_archive",
    "upgrade",
]
