"""One engine per campaign: taking a campaign's lease, keeping it alive, and giving it up.

An engine takes the lease before it starts anything (`take`), so a second engine on the same
campaign is refused at once with who owns it (LeaseHeldError). A `LeaseKeeper` thread renews the
heartbeat every `heartbeat_s`. A thread rather than the engine loop, because the loop may block
for longer than a TTL: a proposer's LLM call with its retries, a sandbox validation, a database
outage ridden out by the store's retry window. A thread also keeps beating while the loop is
stuck, which is the price: a hung engine looks alive, as any heartbeat from a side thread would.

The keeper notices two things the engine must act on at its next step (`problem`): the lease was
taken over (another engine runs the campaign: stop without writing; every write is fenced
anyway), or the process that launched this engine (`lossforge serve`) died, so nobody watches it
any more: the engine pauses itself rather than run on unwatched. A lease held by a process that
is gone from this very host is taken over at once instead of after the TTL.

The keeper also carries what the engine is doing (`report`: its phase, jobs waiting, jobs in
flight) onto the campaign row with each heartbeat, in the heartbeat's own UPDATE: a live view of
the campaign at no extra write per job. Giving the lease up clears it.

It does not decide what a stop writes (engine.py does).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psutil

from discovery.archive import DEFAULT_LEASE_TTL_S, Archive, Lease

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LeaseConfig:
    # A lease whose heartbeat is older than this is expired; readers use the same value.
    ttl_s: float = DEFAULT_LEASE_TTL_S
    # How often the owner renews its heartbeat: a few beats fit in one TTL.
    heartbeat_s: float = 5.0

    def __post_init__(self) -> None:
        if not 0 < self.heartbeat_s * 2 <= self.ttl_s:
            raise ValueError(
                f"the lease heartbeat ({self.heartbeat_s} s) must be positive and at most half "
                f"its TTL ({self.ttl_s} s), or a live engine would look gone"
            )


def _gone(lease: Lease, host: str) -> bool:
    """Is the lease's holder a process of this host that no longer runs?"""
    if lease.host != host:
        return False
    try:
        return psutil.Process(lease.pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def take(
    archive: Archive, campaign_id: int, config: LeaseConfig, *, parent_pid: int | None = None
) -> LeaseKeeper:
    """Take the campaign's lease for this process (LeaseHeldError if a live engine has it)."""
    host, pid = socket.gethostname(), os.getpid()
    current = archive.get_campaign(campaign_id).lease
    dead = current.owner if current is not None and _gone(current, host) else None
    owner = uuid.uuid4().hex
    archive.acquire_lease(campaign_id, owner=owner, host=host, pid=pid, dead_owner=dead)
    log.info("campaign %s: lease taken (owner %s, pid %s)", campaign_id, owner, pid)
    return LeaseKeeper(
        archive=archive,
        campaign_id=campaign_id,
        owner=owner,
        config=config,
        parent_pid=parent_pid,
    )


class LeaseKeeper:
    """Renews one held lease from a daemon thread; reports what the engine must act on."""

    def __init__(
        self,
        *,
        archive: Archive,
        campaign_id: int,
        owner: str,
        config: LeaseConfig,
        parent_pid: int | None = None,
    ) -> None:
        self.archive = archive
        self.campaign_id = campaign_id
        self.owner = owner
        self.config = config
        self.parent_pid = parent_pid  # the launching server's pid; None: nobody to watch
        self.lost: str | None = None  # set when the lease was taken over
        self.orphaned: str | None = None  # set when the launching server died
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # What `report` last said, written by the next heartbeat (None: nothing reported yet).
        # Replaced whole, never mutated, so the heartbeat thread reads one consistent dict.
        self._live: dict[str, Any] | None = None

    def report(
        self,
        *,
        phase: str | None = None,
        queue_depth: int | None = None,
        in_flight: int | None = None,
    ) -> None:
        """Update what the next heartbeat writes to `campaigns.live`; fields left None keep their
        last value. No database write happens here, so the engine may call it every step."""
        given = {"phase": phase, "queue_depth": queue_depth, "in_flight": in_flight}
        last = self._live or {"phase": None, "queue_depth": 0, "in_flight": 0}
        live = {**last, **{key: value for key, value in given.items() if value is not None}}
        self._live = live

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._beat, name=f"lossforge-lease-{self.campaign_id}", daemon=True
        )
        self._thread.start()

    def _beat(self) -> None:
        failing = False
        while not self._stop.wait(self.config.heartbeat_s):
            if self.parent_pid is not None and os.getppid() != self.parent_pid:
                self.orphaned = (
                    f"the server that started this engine (pid {self.parent_pid}) stopped; "
                    "resume the campaign from any server or with "
                    f"`lossforge run --resume {self.campaign_id}`"
                )
            try:
                live = self._live
                if live is not None:
                    live = {**live, "updated_at": datetime.now(UTC).isoformat()}
                held = self.archive.renew_lease(self.campaign_id, self.owner, live=live)
            except Exception as exc:  # a thread boundary: the engine's own writes decide
                if not failing:  # the store's retry window speaks for an outage; no second line
                    log.debug("campaign %s: lease heartbeat failed: %s", self.campaign_id, exc)
                failing = True
                continue
            failing = False
            if not held:
                self.lost = (
                    f"campaign {self.campaign_id}: this engine's lease was taken over by "
                    "another engine; it stops without writing anything more"
                )
                return

    def stop(self) -> None:
        """Stop renewing and give the lease up (best effort: an unreachable database lets it
        expire instead, and the campaign reads INTERRUPTED after the TTL)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.config.heartbeat_s + 5)
        try:
            self.archive.release_lease(self.campaign_id, self.owner)
        except Exception as exc:  # shutting down: the lease expires on its own
            log.debug("campaign %s: the lease was not released: %s", self.campaign_id, exc)
