"""The archive's shared core: sessions, the lease fence, the retry window and row copying.

`ArchiveCore` holds the engine and opens the short transactions every store method runs in:
`_read()` for queries and `_write()` for changes. A `_write()` of a fenced view (`fenced`) first
checks, under a row lock and in the same transaction, that its engine still holds the campaign's
lease, so an engine that lost it writes nothing more (LeaseLostError). `with_retries` wraps every
public method of the composed `Archive` so that a view built by `retrying(seconds)` rides out
database outages (retry.py).

It holds no queries of its own: campaigns.py, candidates.py and telemetry.py do, and store.py
composes them into `Archive`.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import inspect
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any, Self, TypeVar

from sqlalchemy import ColumnElement, Engine, or_, select
from sqlalchemy.orm import Session, sessionmaker

from discovery.archive import retry, text
from discovery.archive.db import WRITE_OPTION
from discovery.archive.errors import LeaseLostError
from discovery.archive.models import Campaign, Event, utcnow
from discovery.archive.records import Lease, NewEvent

R = TypeVar("R")
F = TypeVar("F", bound=Callable[..., Any])
C = TypeVar("C", bound=type)

DEFAULT_LEASE_TTL_S = 30.0  # a lease whose heartbeat is older than this is expired

# Methods that build views of the store: no database call to retry.
_PURE = frozenset({"fenced", "retrying"})


def copy_record(cls: type[R], row: Any) -> R:
    """Copy a row's columns into the record class of the same shape."""
    values = {f.name: getattr(row, f.name) for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    return cls(**values)


def lease_of(row: Campaign, cutoff: datetime) -> Lease | None:
    """The campaign row's lease (expired when its heartbeat is older than `cutoff`), or None."""
    if row.lease_owner is None or row.lease_since is None or row.lease_heartbeat is None:
        return None
    return Lease(
        owner=row.lease_owner,
        host=row.lease_host or "?",
        pid=row.lease_pid or 0,
        since=row.lease_since,
        heartbeat=row.lease_heartbeat,
        expired=row.lease_heartbeat < cutoff,
    )


def _retried(fn: F) -> F:
    """Run a store method under the archive's retry window (`ArchiveCore.retrying`)."""

    @functools.wraps(fn)
    def call(self: ArchiveCore, *args: Any, **kwargs: Any) -> Any:
        if self.retry_s <= 0:
            return fn(self, *args, **kwargs)
        where = self.engine.url.render_as_string(hide_password=True)
        return retry.call(lambda: fn(self, *args, **kwargs), seconds=self.retry_s, where=where)

    return call  # type: ignore[return-value]


def with_retries(cls: C) -> C:
    """Wrap every public method `cls` has, its own or inherited, in the retry window.

    The wrappers are set on `cls` itself, so the concept classes it is composed of stay plain and
    no method is wrapped twice.
    """
    for name in dir(cls):
        if name.startswith("_") or name in _PURE:
            continue
        fn = inspect.getattr_static(cls, name)
        if inspect.isfunction(fn):
            setattr(cls, name, _retried(fn))
    return cls


class ArchiveCore:
    """The engine, its sessions, the fence and the retry window that every store method shares.

    `lease_ttl_s`: how old a lease's heartbeat may be before it is expired (readers and engines
    must agree on it: it comes from the settings).
    """

    def __init__(self, engine: Engine, *, lease_ttl_s: float = DEFAULT_LEASE_TTL_S) -> None:
        self.engine = engine
        self.lease_ttl_s = lease_ttl_s
        self.retry_s = 0.0  # see `retrying`
        self._fence: tuple[int, str] | None = None  # see `fenced`
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        text.install(self._sessions)  # NUL characters, which PostgreSQL refuses

    def fenced(self, campaign_id: int, owner: str) -> Self:
        """This store, whose every write first checks that `owner` still holds the campaign's
        lease, in the same transaction (LeaseLostError otherwise: nothing is written)."""
        view = copy.copy(self)
        view._fence = (campaign_id, owner)
        return view

    def retrying(self, seconds: float) -> Self:
        """This store, re-running calls that fail on a transient database error for up to
        `seconds` (then DatabaseUnavailableError)."""
        view = copy.copy(self)
        view.retry_s = seconds
        return view

    def _cutoff(self) -> datetime:
        return utcnow() - timedelta(seconds=self.lease_ttl_s)

    def _lease_dead(self, cutoff: datetime) -> ColumnElement[bool]:
        return or_(Campaign.lease_owner.is_(None), Campaign.lease_heartbeat < cutoff)

    @contextmanager
    def _read(self) -> Iterator[Session]:
        with self._sessions() as session:
            yield session

    @contextmanager
    def _write(self) -> Iterator[Session]:
        with self._sessions() as session:
            # Asks SQLite for the write lock when the transaction begins (see `db`).
            session.connection(execution_options={WRITE_OPTION: True})
            if self._fence is not None:
                self._check_fence(session, *self._fence)
            yield session
            session.commit()

    def _check_fence(self, session: Session, campaign_id: int, owner: str) -> None:
        # FOR SHARE on PostgreSQL: a takeover (an UPDATE of this row) waits until this write
        # commits, and then finds the lease still held. SQLite's write lock serializes all writes.
        query = select(Campaign.lease_owner).where(Campaign.id == campaign_id)
        if session.scalar(query.with_for_update(read=True)) == owner:
            return
        row = session.get(Campaign, campaign_id)
        lease = lease_of(row, self._cutoff()) if row is not None else None
        now = f"now owned by another engine ({lease.describe()})" if lease else "no longer owned"
        raise LeaseLostError(
            f"campaign {campaign_id} is {now}: this engine lost its lease and stops without "
            "writing anything more"
        )

    @staticmethod
    def _add_event(session: Session, event: NewEvent | None) -> None:
        if event is not None:
            session.add(
                Event(campaign_id=event.campaign_id, kind=event.kind, payload=event.payload)
            )
