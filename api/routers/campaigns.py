"""`/api/campaigns`: start, list, read, pause, resume and cancel campaigns (their leaderboards,
plot series and genealogy are leaderboards.py's).

Starting stores the validated spec as a PENDING campaign and hands it to the launcher, which runs
its engine in a separate process (launcher.py): the request returns 202 at once. A body over the
spec's size cap is refused with 413 before it is read (bodies.py); one that is not a YAML or JSON
mapping of bounded depth gets a 422 with one sentence, a bad field a 422 naming it: the CLI's
loader reads it (discovery.spec.read_spec). Pause, resume and cancel are compare-and-set status
changes (discovery/control.py) that the running engine obeys.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

import yaml
from fastapi import APIRouter, HTTPException, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError

from api import schemas, views
from api.bodies import capped_route
from api.deps import ArchiveDep, BoardsDep, LauncherDep, RequireRead, RequireWrite
from api.launcher import Launcher
from discovery import control
from discovery.archive import Archive, CampaignStatus, NotFoundError
from discovery.runner import create_campaign
from discovery.spec import CampaignSpec, read_spec
from discovery.spec_text import MAX_SPEC_BYTES, SpecError, too_large

router = APIRouter(
    prefix="/api/campaigns",
    tags=["campaigns"],
    route_class=capped_route(MAX_SPEC_BYTES, too_large("the spec", MAX_SPEC_BYTES)),
)

_NOT_FOUND = {404: {"model": schemas.Problem, "description": "No campaign with this id."}}
_CONFLICT = {409: {"model": schemas.Problem, "description": "Not allowed in its status."}}
_UNAUTHORIZED = {401: {"model": schemas.Problem, "description": "A token is needed."}}
_INVALID = {422: {"model": schemas.ValidationProblem, "description": "A bad field, named."}}
_TOO_LARGE = {
    413: {"model": schemas.Problem, "description": f"A spec over {MAX_SPEC_BYTES:,} bytes."}
}
_YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/plain")

# A small offline campaign (a minute on a laptop): the OpenAPI example and the web form's default.
EXAMPLE_SPEC: dict[str, Any] = yaml.safe_load(
    (resources.files("api.web") / "static" / "example-spec.yaml").read_text(encoding="utf-8")
)

_SPEC_REF = "#/components/schemas/{model}"
_SPEC_BODY = {
    "requestBody": {
        "required": True,
        "description": "The campaign spec (see examples/quickstart.yaml), as JSON or YAML.",
        "content": {
            "application/json": {
                "schema": {"$ref": _SPEC_REF.format(model="CampaignSpec")},
                "example": EXAMPLE_SPEC,
            },
            "application/yaml": {"schema": {"$ref": _SPEC_REF.format(model="CampaignSpec")}},
        },
    }
}


def spec_schemas() -> dict[str, Any]:
    """The spec's JSON schemas, for the OpenAPI document's components (the body is parsed by
    hand, to take YAML too, so FastAPI does not add them itself)."""
    schema = CampaignSpec.model_json_schema(ref_template=_SPEC_REF)
    defs = schema.pop("$defs", {})
    return {"CampaignSpec": schema, **defs}


def _get(archive: Archive, campaign_id: schemas.CampaignId) -> Any:
    try:
        return archive.get_campaign(campaign_id)
    except NotFoundError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=str(exc)) from None


async def _read_spec(request: Request) -> CampaignSpec:
    """The body as a spec, read by the CLI's loader (discovery.spec.read_spec); 422 naming each
    bad field (as FastAPI reports bad bodies), or with one sentence for a body that is not a spec
    document at all; 413 over the size cap."""
    body = await request.body()  # capped: 413 past MAX_SPEC_BYTES (bodies.py)
    content_type = request.headers.get("content-type", "application/json").split(";")[0].strip()
    fmt = "yaml" if content_type.lower() in _YAML_TYPES else "json"
    try:
        # Off the event loop: a megabyte of YAML takes PyYAML a second or more.
        return await run_in_threadpool(read_spec, body, fmt=fmt, source="the spec")
    except SpecError as exc:
        if not exc.problems:
            raise _body_error(str(exc), "spec_document") from None
        raise RequestValidationError(
            [
                {"loc": ["body", *loc], "msg": message, "type": "spec_field"}
                for loc, message in exc.problems
            ]
        ) from None


def _body_error(message: str, kind: str) -> RequestValidationError:
    return RequestValidationError([{"loc": ["body"], "msg": message, "type": kind}])


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=schemas.CampaignStarted,
    dependencies=[RequireWrite],
    responses={**_UNAUTHORIZED, **_TOO_LARGE, **_INVALID},
    openapi_extra=_SPEC_BODY,
    summary="Start a campaign from a spec",
)
async def start_campaign(
    request: Request, archive: ArchiveDep, launcher: LauncherDep
) -> schemas.CampaignStarted:
    """Store the spec as a new campaign and start its engine in its own process."""
    spec = await _read_spec(request)  # async: the body is read here, then parsed by hand
    # The database write and the process start block: off the event loop.
    campaign_id = await run_in_threadpool(create_campaign, archive, spec)
    await run_in_threadpool(launcher.start, campaign_id)
    base = f"/api/campaigns/{campaign_id}"
    return schemas.CampaignStarted(
        id=campaign_id,
        status=str(CampaignStatus.PENDING),  # as stored; the engine moves it on
        links=schemas.CampaignLinks(
            self=base, events=f"{base}/events", leaderboard=f"{base}/leaderboard"
        ),
    )


@router.get(
    "",
    response_model=schemas.CampaignList,
    dependencies=[RequireRead],
    summary="List campaigns, newest first",
)
def list_campaigns(archive: ArchiveDep, launcher: LauncherDep) -> schemas.CampaignList:
    return schemas.CampaignList(views.campaigns(archive, running=launcher.running))


@router.get(
    "/{campaign_id}",
    response_model=schemas.CampaignDetail,
    dependencies=[RequireRead],
    responses=_NOT_FOUND,
    summary="A campaign: status, budget used, counts by status, best candidate",
)
def read_campaign(
    archive: ArchiveDep,
    launcher: LauncherDep,
    boards: BoardsDep,
    campaign_id: schemas.CampaignId,
) -> schemas.CampaignDetail:
    record = _get(archive, campaign_id)
    return views.campaign_detail(
        archive,
        record,
        running=launcher.running(campaign_id),
        board=boards.get(campaign_id),
    )


def _control(
    archive: Archive, launcher: Launcher, campaign_id: schemas.CampaignId, action: str
) -> schemas.Campaign:
    _get(archive, campaign_id)
    try:
        if action == "pause":
            record = control.pause(archive, campaign_id, by="API")
        elif action == "cancel":
            record = control.cancel(
                archive, campaign_id, by="API", engine_running=launcher.running(campaign_id)
            )
        else:
            _refuse_if_owned(archive, campaign_id, launcher.running(campaign_id))
            record = control.resume(archive, campaign_id)
            launcher.start(campaign_id)
    except control.ControlError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=str(exc)) from None
    return views.campaign(archive, record, running=launcher.running(campaign_id))


def _refuse_if_owned(archive: Archive, campaign_id: int, own_child: bool) -> None:
    """A campaign whose live engine runs elsewhere (another server, a CLI) cannot be resumed
    here: that engine would refuse the new one. This server's own child is waited for instead."""
    lease = archive.get_campaign(campaign_id).lease
    if lease is not None and not lease.expired and not own_child:
        raise control.ControlError(
            f"campaign {campaign_id} is still owned by its engine ({lease.describe()}); wait for "
            "it to stop, then resume"
        )


_CONTROL = {
    "status_code": status.HTTP_202_ACCEPTED,
    "response_model": schemas.Campaign,
    "dependencies": [RequireWrite],
    "responses": {**_NOT_FOUND, **_CONFLICT, **_UNAUTHORIZED},
}


@router.post("/{campaign_id}/pause", summary="Pause (the engine stops shortly)", **_CONTROL)
def pause_campaign(
    archive: ArchiveDep, launcher: LauncherDep, campaign_id: schemas.CampaignId
) -> schemas.Campaign:
    return _control(archive, launcher, campaign_id, "pause")


@router.post(
    "/{campaign_id}/resume",
    summary="Resume a paused, failed or interrupted campaign",
    **_CONTROL,
)
def resume_campaign(
    archive: ArchiveDep, launcher: LauncherDep, campaign_id: schemas.CampaignId
) -> schemas.Campaign:
    return _control(archive, launcher, campaign_id, "resume")


@router.post("/{campaign_id}/cancel", summary="Cancel for good", **_CONTROL)
def cancel_campaign(
    archive: ArchiveDep, launcher: LauncherDep, campaign_id: schemas.CampaignId
) -> schemas.Campaign:
    return _control(archive, launcher, campaign_id, "cancel")
