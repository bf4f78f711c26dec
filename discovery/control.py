"""Pause, resume and cancel: the requests the CLI and the API send to a campaign's engine.

A request is a status change in the archive, made with compare-and-set
(`Archive.transition_campaign`), so it cannot overwrite a stop the engine wrote at the same moment:
the engine reads PAUSED or CANCELLED at its next step and stops itself (DESIGN.md section 5).
Resuming moves a PAUSED, FAILED or INTERRUPTED campaign (RUNNING, but its engine's lease expired:
the process died) back to PENDING; whoever resumes then starts an engine (`lossforge run
--resume`, or the API's launcher), which takes the lease. An interrupted campaign can also be
paused or cancelled: no engine is left to record the stop, so it is recorded here. A request that
does not fit the campaign's status raises `ControlError` saying why; unknown ids raise the
archive's `NotFoundError`.
"""

from __future__ import annotations

from discovery.archive import Archive, CampaignRecord, CampaignStatus, NewEvent

_PAUSABLE = (CampaignStatus.PENDING, CampaignStatus.RUNNING)
_CANCELLABLE = (
    CampaignStatus.PENDING,
    CampaignStatus.RUNNING,
    CampaignStatus.PAUSED,
    CampaignStatus.FAILED,
)
_RESUMABLE = (CampaignStatus.PAUSED, CampaignStatus.FAILED, CampaignStatus.INTERRUPTED)


def allowed_actions(status: CampaignStatus) -> dict[str, bool]:
    """Which requests a campaign shown as `status` accepts: pause, resume, cancel. INTERRUPTED
    is a stored RUNNING whose engine is gone, so it can be paused and cancelled like one, and
    resumed."""
    stored = CampaignStatus.RUNNING if status is CampaignStatus.INTERRUPTED else status
    return {
        "pause": stored in _PAUSABLE,
        "resume": status in _RESUMABLE,
        "cancel": stored in _CANCELLABLE,
    }


class ControlError(Exception):
    """A request that the campaign's status does not allow (HTTP 409)."""


def pause(archive: Archive, campaign_id: int, *, by: str) -> CampaignRecord:
    """PAUSED; a running engine stops at its next step (and records the stop). An interrupted
    campaign has no engine left, so its stop is recorded here."""
    before = archive.get_campaign(campaign_id).status
    reason = f"paused on request ({by}); resume it to continue"
    record = archive.transition_campaign(
        campaign_id,
        to=CampaignStatus.PAUSED,
        allowed_from=_PAUSABLE,
        reason=reason,
        event=_finish_event(campaign_id, CampaignStatus.PAUSED, reason)
        if before is CampaignStatus.INTERRUPTED
        else None,
    )
    return record or _refuse(archive, campaign_id, "paused", _PAUSABLE)


def cancel(archive: Archive, campaign_id: int, *, by: str, engine_running: bool) -> CampaignRecord:
    """Cancel for good. A running engine stops and records the end itself; otherwise the end is
    recorded here (a `finish` event, so followers of the event stream see it)."""
    before = archive.get_campaign(campaign_id).status
    reason = f"cancelled on request ({by})"
    record = archive.transition_campaign(
        campaign_id,
        to=CampaignStatus.CANCELLED,
        allowed_from=_CANCELLABLE,
        reason=reason,
        event=_finish_event(campaign_id, CampaignStatus.CANCELLED, reason)
        if not engine_running and before is not CampaignStatus.RUNNING
        else None,
    )
    return record or _refuse(archive, campaign_id, "cancelled", _CANCELLABLE)


def fail(
    archive: Archive,
    campaign_id: int,
    reason: str,
    *also_from: CampaignStatus,
    owned: bool = False,
    dead_owner: str | None = None,
) -> None:
    """FAILED with the reason (and a `finish` event, in one transaction) when no engine is left
    to record a stop: its process died, or it failed to start. A campaign that already stopped
    otherwise (PENDING and RUNNING can fail; `also_from` adds statuses) is left as it is.

    `owned`: the caller holds the campaign's lease (through its fenced archive) and gives it up
    with the change. Otherwise the change is made only when no live engine owns the campaign
    (lease free, expired, or `dead_owner`'s): a refused second engine must not fail the first's.
    """
    reason = reason[:2000]
    archive.transition_campaign(
        campaign_id,
        to=CampaignStatus.FAILED,
        allowed_from=(CampaignStatus.PENDING, CampaignStatus.RUNNING, *also_from),
        reason=reason,
        event=_finish_event(campaign_id, CampaignStatus.FAILED, reason),
        release_lease=owned,
        unowned=not owned,
        dead_owner=dead_owner,
    )


def _finish_event(campaign_id: int, status: CampaignStatus, reason: str) -> NewEvent:
    # The event an engine writes when it stops; followers of the stream end on it.
    return NewEvent(campaign_id, "finish", {"status": str(status), "reason": reason})


def resume(archive: Archive, campaign_id: int) -> CampaignRecord:
    """PAUSED, FAILED or INTERRUPTED -> PENDING; the caller starts an engine for it."""
    record = archive.transition_campaign(
        campaign_id,
        to=CampaignStatus.PENDING,
        allowed_from=_RESUMABLE,
        reason="resume requested; waiting for its engine to start",
    )
    return record or _refuse(archive, campaign_id, "resumed", _RESUMABLE)


def _refuse(
    archive: Archive, campaign_id: int, verb: str, allowed: tuple[CampaignStatus, ...]
) -> CampaignRecord:
    current = archive.get_campaign(campaign_id)
    status, hint = current.status, ""
    if verb == "resumed" and status is CampaignStatus.RUNNING and current.lease is not None:
        hint = f"; its engine runs ({current.lease.describe()})"
    names = ", ".join(str(s) for s in allowed)
    raise ControlError(
        f"campaign {campaign_id} is {status}: only a campaign that is {names} can be {verb}{hint}"
    )
