"""Pause, resume and cancel: the requests the CLI and the API send to a campaign's engine.

A request is a status change in the archive, made with compare-and-set
(`Archive.transition_campaign`), so it cannot overwrite a stop the engine wrote at the same moment:
the engine reads PAUSED or CANCELLED at its next step and stops itself (DESIGN.md section 5).
Resuming moves a PAUSED or FAILED campaign back to PENDING; whoever resumes then starts an engine
(`lossforge run --resume`, or the API's launcher). A request that does not fit the campaign's status
raises `ControlError` saying why; unknown ids raise the archive's `NotFoundError`.
"""

from __future__ import annotations

from discovery.archive import Archive, CampaignRecord, CampaignStatus

_PAUSABLE = (CampaignStatus.PENDING, CampaignStatus.RUNNING)
_CANCELLABLE = (
    CampaignStatus.PENDING,
    CampaignStatus.RUNNING,
    CampaignStatus.PAUSED,
    CampaignStatus.FAILED,
)
_RESUMABLE = (CampaignStatus.PAUSED, CampaignStatus.FAILED)


class ControlError(Exception):
    """A request that the campaign's status does not allow (HTTP 409)."""


def pause(archive: Archive, campaign_id: int, *, by: str) -> CampaignRecord:
    record = archive.transition_campaign(
        campaign_id,
        to=CampaignStatus.PAUSED,
        allowed_from=_PAUSABLE,
        reason=f"paused on request ({by}); resume it to continue",
    )
    return record or _refuse(archive, campaign_id, "paused", _PAUSABLE)


def cancel(archive: Archive, campaign_id: int, *, by: str, engine_running: bool) -> CampaignRecord:
    """Cancel for good. A running engine stops and records the end itself; otherwise the end is
    recorded here (a `finish` event, so followers of the event stream see it)."""
    before = archive.get_campaign(campaign_id).status
    reason = f"cancelled on request ({by})"
    record = archive.transition_campaign(
        campaign_id, to=CampaignStatus.CANCELLED, allowed_from=_CANCELLABLE, reason=reason
    )
    if record is None:
        return _refuse(archive, campaign_id, "cancelled", _CANCELLABLE)
    if not engine_running and before is not CampaignStatus.RUNNING:
        _finished(archive, campaign_id, CampaignStatus.CANCELLED, reason)
    return record


def fail(archive: Archive, campaign_id: int, reason: str, *also_from: CampaignStatus) -> None:
    """FAILED with the reason (and a `finish` event) when no engine is left to record a stop: its
    process died, or it failed to start. A campaign that already stopped otherwise (PENDING and
    RUNNING can fail; `also_from` adds statuses) is left as it is."""
    reason = reason[:2000]
    if archive.transition_campaign(
        campaign_id,
        to=CampaignStatus.FAILED,
        allowed_from=(CampaignStatus.PENDING, CampaignStatus.RUNNING, *also_from),
        reason=reason,
    ):
        _finished(archive, campaign_id, CampaignStatus.FAILED, reason)


def _finished(archive: Archive, campaign_id: int, status: CampaignStatus, reason: str) -> None:
    # The event an engine writes when it stops; followers of the stream end on it.
    archive.append_event(
        campaign_id=campaign_id, kind="finish", payload={"status": str(status), "reason": reason}
    )


def resume(archive: Archive, campaign_id: int) -> CampaignRecord:
    """PAUSED or FAILED -> PENDING; the caller starts an engine for it."""
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
    status = archive.get_campaign(campaign_id).status
    hint = ""
    if verb == "resumed" and status is CampaignStatus.RUNNING:
        hint = (
            "; if its engine process died, pause it first (lossforge pause "
            f"{campaign_id}), then resume"
        )
    names = ", ".join(str(s) for s in allowed)
    raise ControlError(
        f"campaign {campaign_id} is {status}: only a campaign that is {names} can be {verb}{hint}"
    )
