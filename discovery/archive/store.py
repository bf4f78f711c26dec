"""The archive's store: typed methods over the tables, the only place that talks to the database.

`Archive` is the one object callers hold. It is composed of one class per concept, each in its own
module: campaigns and their leases (campaigns.py), candidates and evaluations (candidates.py), LLM
calls, events and monitoring totals (telemetry.py), over the shared core of sessions, the lease
fence and the retry window (session.py).

Every method opens its own short transaction, so one `Archive` can be shared by threads, and
several processes can share one SQLite file (see `db`). Writes that must not happen twice are
refused by database constraints, not by Python checks that would race. Methods return frozen
records (`records`), never ORM rows.

Ownership: a campaign has at most one engine, holding its lease (`acquire_lease`, renewed by
`renew_lease`). The engine writes through `fenced(campaign_id, owner)`, a view of the store whose
every write transaction first checks, under a row lock, that the lease is still its own, so an
engine that lost its lease cannot write one more row (LeaseLostError). A RUNNING campaign whose
lease is free or expired reads as INTERRUPTED. A row and the event that reports it are written in
one transaction (`event=`). `retrying(seconds)` rides out database outages (retry.py): every public
method runs under it.

It does not validate campaign specs, choose what to evaluate or compute scores: it stores what it is
given.
"""

from __future__ import annotations

from discovery.archive.campaigns import CampaignArchive
from discovery.archive.candidates import CandidateArchive
from discovery.archive.db import create_archive_engine
from discovery.archive.migrate import upgrade
from discovery.archive.session import DEFAULT_LEASE_TTL_S, with_retries
from discovery.archive.telemetry import TelemetryArchive


@with_retries
class Archive(CampaignArchive, CandidateArchive, TelemetryArchive):
    """Typed access to one archive database; see the module docstring.

    `Archive(engine, lease_ttl_s=...)`: `lease_ttl_s` is how old a lease's heartbeat may be before
    it is expired (readers and engines must agree on it: it comes from the settings).
    """


def open_archive(
    url: str, *, migrate: bool = True, lease_ttl_s: float = DEFAULT_LEASE_TTL_S
) -> Archive:
    """Open the archive at `url`, bringing its schema up to date first (the default)."""
    engine = create_archive_engine(url)
    if migrate:
        upgrade(engine)
    return Archive(engine, lease_ttl_s=lease_ttl_s)


__all__ = ["DEFAULT_LEASE_TTL_S", "Archive", "open_archive"]
