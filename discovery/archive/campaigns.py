"""Campaign rows: creation, status changes, the one-engine lease, the budget used and the stamp.

A campaign has at most one engine, holding its lease (`acquire_lease`, renewed by `renew_lease`,
which also stores what the engine is doing, given up by `release_lease`); a RUNNING campaign whose
lease is free or expired reads as INTERRUPTED, which is shown and never stored.
`transition_campaign` changes a status only from the statuses it is told, in one statement, so a
stop request cannot overwrite what an engine wrote at the same moment.

It does not validate campaign specs or decide when a campaign stops: it stores what it is given.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_, select, update

from discovery.archive.errors import LeaseHeldError, NotFoundError
from discovery.archive.models import Campaign, Event, utcnow
from discovery.archive.records import CampaignRecord, CampaignStatus, NewEvent
from discovery.archive.session import ArchiveCore, lease_of

_FINAL_CAMPAIGN_STATUSES = {
    CampaignStatus.CANCELLED,
    CampaignStatus.FINISHED,
    CampaignStatus.FAILED,
}
# Cleared when the lease is given up or taken from a dead engine: `live` is what its engine was
# doing, so it goes with the lease.
_LEASE_COLUMNS = (
    "lease_owner",
    "lease_host",
    "lease_pid",
    "lease_since",
    "lease_heartbeat",
    "live",
)


def _campaign(row: Campaign, cutoff: datetime) -> CampaignRecord:
    lease = lease_of(row, cutoff)
    status = CampaignStatus(row.status)
    if status is CampaignStatus.RUNNING and (lease is None or lease.expired):
        status = CampaignStatus.INTERRUPTED  # its engine is gone: shown, never stored
    values = {
        f.name: getattr(row, f.name)
        for f in dataclasses.fields(CampaignRecord)
        if f.name != "lease"
    }
    return CampaignRecord(**{**values, "status": status, "lease": lease})


class CampaignArchive(ArchiveCore):
    """Campaigns, their statuses and their leases (a part of `Archive`; see store.py)."""

    def create_campaign(self, *, name: str, spec: dict[str, Any], seed: int) -> CampaignRecord:
        with self._write() as session:
            row = Campaign(name=name, spec=spec, seed=seed, status=CampaignStatus.PENDING)
            session.add(row)
            session.flush()
            return _campaign(row, self._cutoff())

    def get_campaign(self, campaign_id: int) -> CampaignRecord:
        with self._read() as session:
            row = session.get(Campaign, campaign_id)
            if row is None:
                raise NotFoundError(f"no campaign with id {campaign_id}")
            return _campaign(row, self._cutoff())

    def list_campaigns(self) -> list[CampaignRecord]:
        cutoff = self._cutoff()
        with self._read() as session:
            rows = session.scalars(select(Campaign).order_by(Campaign.id.desc()))
            return [_campaign(row, cutoff) for row in rows]

    def set_campaign_status(
        self, campaign_id: int, *, status: CampaignStatus, reason: str | None = None
    ) -> CampaignRecord:
        with self._write() as session:
            row = session.get(Campaign, campaign_id)
            if row is None:
                raise NotFoundError(f"no campaign with id {campaign_id}")
            row.status = status
            row.reason = reason
            row.finished_at = utcnow() if status in _FINAL_CAMPAIGN_STATUSES else None
            session.flush()
            return _campaign(row, self._cutoff())

    def transition_campaign(
        self,
        campaign_id: int,
        *,
        to: CampaignStatus,
        allowed_from: Sequence[CampaignStatus],
        reason: str | None = None,
        event: NewEvent | None = None,
        release_lease: bool = False,
        unowned: bool = False,
        dead_owner: str | None = None,
    ) -> CampaignRecord | None:
        """Set the status only if it is one of `allowed_from`, in one statement (compare and set).

        Returns the updated record, or None when the campaign was in another status, so a request
        that races an engine writing FINISHED cannot overwrite it. NotFoundError for unknown ids.
        INTERRUPTED in `allowed_from` matches a RUNNING campaign whose lease is free or expired.
        `event` is written with the change (not without it). `release_lease` clears the lease (an
        engine's stop, through its fenced view). `unowned` applies the change only when no live
        engine owns the campaign (its lease is free, expired, or `dead_owner`'s), and clears
        the lease.
        """
        final = to in _FINAL_CAMPAIGN_STATUSES
        cutoff = self._cutoff()
        stored = [str(s) for s in allowed_from if s is not CampaignStatus.INTERRUPTED]
        match: ColumnElement[bool] = Campaign.status.in_(stored)
        if CampaignStatus.INTERRUPTED in allowed_from:
            interrupted = and_(Campaign.status == CampaignStatus.RUNNING, self._lease_dead(cutoff))
            match = or_(match, interrupted)
        values: dict[str, Any] = {
            "status": to,
            "reason": reason,
            "finished_at": utcnow() if final else None,
        }
        if unowned:
            free = self._lease_dead(cutoff)
            match = and_(
                match, or_(free, Campaign.lease_owner == dead_owner) if dead_owner else free
            )
        if release_lease or unowned:
            values |= dict.fromkeys(_LEASE_COLUMNS)
        statement = update(Campaign).where(Campaign.id == campaign_id, match).values(**values)
        with self._write() as session:
            changed = session.execute(statement).rowcount
            row = session.get(Campaign, campaign_id)
            if row is None:
                raise NotFoundError(f"no campaign with id {campaign_id}")
            if changed:
                self._add_event(session, event)
            return _campaign(row, cutoff) if changed else None

    # -- leases ------------------------------------------------------------------------------

    def acquire_lease(
        self, campaign_id: int, *, owner: str, host: str, pid: int, dead_owner: str | None = None
    ) -> CampaignRecord:
        """Take the campaign's lease for `owner`, in one conditional UPDATE: only when it is
        free, expired, or `dead_owner`'s (a holder the caller knows has died). LeaseHeldError
        names the live owner otherwise; NotFoundError for unknown ids."""
        now = utcnow()
        match = self._lease_dead(now - timedelta(seconds=self.lease_ttl_s))
        if dead_owner is not None:
            match = or_(match, Campaign.lease_owner == dead_owner)
        statement = (
            update(Campaign)
            .where(Campaign.id == campaign_id, match)
            .values(
                lease_owner=owner,
                lease_host=host,
                lease_pid=pid,
                lease_since=now,
                lease_heartbeat=now,
                live=None,  # a dead engine's state is not this one's
            )
        )
        with self._write() as session:
            changed = session.execute(statement).rowcount
            row = session.get(Campaign, campaign_id)
            if row is None:
                raise NotFoundError(f"no campaign with id {campaign_id}")
            record = _campaign(row, self._cutoff())
        if not changed:
            assert record.lease is not None  # a live lease is what refused the UPDATE
            raise LeaseHeldError(campaign_id, record.lease)
        return record

    def renew_lease(
        self, campaign_id: int, owner: str, *, live: dict[str, Any] | None = None
    ) -> bool:
        """Renew `owner`'s heartbeat, and store `live` (what its engine is doing, see
        `CampaignRecord.live`) in the same UPDATE when given; False when the lease is no longer
        `owner`'s."""
        values: dict[str, Any] = {"lease_heartbeat": utcnow()}
        if live is not None:
            values["live"] = live
        statement = (
            update(Campaign)
            .where(Campaign.id == campaign_id, Campaign.lease_owner == owner)
            .values(**values)
        )
        with self._write() as session:
            return bool(session.execute(statement).rowcount)

    def release_lease(self, campaign_id: int, owner: str) -> bool:
        """Give `owner`'s lease up (the campaign, if left RUNNING, then reads INTERRUPTED)."""
        statement = (
            update(Campaign)
            .where(Campaign.id == campaign_id, Campaign.lease_owner == owner)
            .values(**dict.fromkeys(_LEASE_COLUMNS))
        )
        with self._write() as session:
            return bool(session.execute(statement).rowcount)

    def set_budget_used(
        self, campaign_id: int, used: dict[str, float], *, event: NewEvent | None = None
    ) -> None:
        with self._write() as session:
            row = session.get(Campaign, campaign_id)
            if row is None:
                raise NotFoundError(f"no campaign with id {campaign_id}")
            row.budget_used = dict(used)
            self._add_event(session, event)

    def campaign_stamp(self, campaign_id: int) -> tuple[int, str]:
        """A cheap version of what a campaign shows: its newest event id and its status.

        Every change a reader sees (a candidate's verdict, a finished evaluation, a stage score, a
        stop) is followed by an event, so an unchanged stamp means unchanged results, up to the
        writes of the step in progress. NotFoundError for unknown ids.
        """
        newest = select(func.coalesce(func.max(Event.id), 0)).where(
            Event.campaign_id == campaign_id
        )
        with self._read() as session:
            status = session.scalar(select(Campaign.status).where(Campaign.id == campaign_id))
            if status is None:
                raise NotFoundError(f"no campaign with id {campaign_id}")
            return int(session.scalar(newest) or 0), str(status)
