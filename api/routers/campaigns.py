"""`/api/campaigns`: start, list, read, pause, resume and cancel campaigns; their leaderboards and
plot series.

Starting stores the validated spec as a PENDING campaign and hands it to the launcher, which runs
its engine in a separate process (launcher.py): the request returns 202 at once. A body over the
spec's size cap is refused with 413 before it is read (bodies.py); one that is not a YAML or JSON
mapping of bounded depth gets a 422 with one sentence (discovery/spec_text.py). Pause, resume
and cancel are compare-and-set status changes (discovery/control.py) that the running engine obeys.
"""

from __future__ import annotations

from importlib import resources
from typing import Annotated, Any

import yaml
from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from api import schemas, views
from api.auth import require_read, require_write
from api.bodies import capped_route
from api.state import boards_of, launcher_of
from discovery import control
from discovery.archive import Archive, CampaignStatus, NotFoundError
from discovery.runner import create_campaign
from discovery.spec import CampaignSpec
from discovery.spec_text import MAX_SPEC_BYTES, SpecError, spec_document, too_large

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


def _archive(request: Request) -> Archive:
    return request.app.state.archive


def _get(archive: Archive, campaign_id: schemas.CampaignId) -> Any:
    try:
        return archive.get_campaign(campaign_id)
    except NotFoundError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=str(exc)) from None


async def _read_spec(request: Request) -> CampaignSpec:
    """The body as a spec; 422 naming each bad field (as FastAPI reports bad bodies), or with one
    sentence for a body that is not a spec document at all; 413 over the size cap."""
    body = await request.body()  # capped: 413 past MAX_SPEC_BYTES (bodies.py)
    content_type = request.headers.get("content-type", "application/json").split(";")[0].strip()
    fmt = "yaml" if content_type.lower() in _YAML_TYPES else "json"
    try:
        # Off the event loop: a megabyte of YAML takes PyYAML a second or more.
        data = await run_in_threadpool(spec_document, body, fmt=fmt, source="the spec")
    except SpecError as exc:
        raise _body_error(str(exc), "spec_document") from None
    try:
        return CampaignSpec.model_validate(data)
    except ValidationError as exc:
        raise RequestValidationError(
            [
                {
                    "loc": ["body", *err["loc"]],
                    "msg": err["msg"],
                    "type": err["type"],
                }
                for err in exc.errors(include_url=False, include_input=False)
            ]
        ) from None


def _body_error(message: str, kind: str) -> RequestValidationError:
    return RequestValidationError([{"loc": ["body"], "msg": message, "type": kind}])


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=schemas.CampaignStarted,
    dependencies=[Depends(require_write)],
    responses={**_UNAUTHORIZED, **_TOO_LARGE, **_INVALID},
    openapi_extra=_SPEC_BODY,
    summary="Start a campaign from a spec",
)
async def start_campaign(request: Request) -> schemas.CampaignStarted:
    """Store the spec as a new campaign and start its engine in its own process."""
    spec = await _read_spec(request)  # async: the body is read here, then parsed by hand
    archive = _archive(request)
    # The database write and the process start block: off the event loop.
    campaign_id = await run_in_threadpool(create_campaign, archive, spec)
    await run_in_threadpool(launcher_of(request).start, campaign_id)
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
    response_model=list[schemas.Campaign],
    dependencies=[Depends(require_read)],
    summary="List campaigns, newest first",
)
def list_campaigns(request: Request) -> list[schemas.Campaign]:
    return views.campaigns(_archive(request), running=launcher_of(request).running)


@router.get(
    "/{campaign_id}",
    response_model=schemas.CampaignDetail,
    dependencies=[Depends(require_read)],
    responses=_NOT_FOUND,
    summary="A campaign: status, budget used, counts by status, best candidate",
)
def read_campaign(request: Request, campaign_id: schemas.CampaignId) -> schemas.CampaignDetail:
    archive = _archive(request)
    record = _get(archive, campaign_id)
    return views.campaign_detail(
        archive,
        record,
        running=launcher_of(request).running(campaign_id),
        board=boards_of(request).get(campaign_id),
    )


def _control(request: Request, campaign_id: schemas.CampaignId, action: str) -> schemas.Campaign:
    archive, launcher = _archive(request), launcher_of(request)
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
    "dependencies": [Depends(require_write)],
    "responses": {**_NOT_FOUND, **_CONFLICT, **_UNAUTHORIZED},
}


@router.post("/{campaign_id}/pause", summary="Pause (the engine stops shortly)", **_CONTROL)
def pause_campaign(request: Request, campaign_id: schemas.CampaignId) -> schemas.Campaign:
    return _control(request, campaign_id, "pause")


@router.post(
    "/{campaign_id}/resume",
    summary="Resume a paused, failed or interrupted campaign",
    **_CONTROL,
)
def resume_campaign(request: Request, campaign_id: schemas.CampaignId) -> schemas.Campaign:
    return _control(request, campaign_id, "resume")


@router.post("/{campaign_id}/cancel", summary="Cancel for good", **_CONTROL)
def cancel_campaign(request: Request, campaign_id: schemas.CampaignId) -> schemas.Campaign:
    return _control(request, campaign_id, "cancel")


@router.get(
    "/{campaign_id}/leaderboard",
    response_model=schemas.LeaderboardPage,
    dependencies=[Depends(require_read)],
    responses=_NOT_FOUND,
    summary="Candidates ranked by highest stage reached, then score vs DPO",
)
async def leaderboard(
    request: Request,
    campaign_id: schemas.CampaignId,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    scored: Annotated[
        bool,
        Query(
            description="Only candidates with a score vs DPO (public or held-out): leaves out "
            "those rejected, duplicate, failed or not evaluated yet. Ranks stay those of the "
            "whole board."
        ),
    ] = False,
) -> Response:
    """Rows have the fields of `lossforge leaderboard --json`, plus their rank. Served from the
    shared cache (boards.py) as pre-encoded JSON: the hot path of a busy server."""
    boards = boards_of(request)
    try:
        # Inline when the cached board is current; a query or a recomputation goes to a thread.
        board = boards.peek(campaign_id) or await run_in_threadpool(boards.get, campaign_id)
    except NotFoundError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=str(exc)) from None
    return Response(
        board.page_json(campaign_id, offset=offset, limit=limit, scored=scored),
        media_type="application/json",
    )


@router.get(
    "/{campaign_id}/series",
    response_model=schemas.Series,
    dependencies=[Depends(require_read)],
    responses=_NOT_FOUND,
    summary="Plot data: best score vs DPO over time, reward vs KL",
)
def series(
    request: Request,
    campaign_id: schemas.CampaignId,
    stage: Annotated[str | None, Query(max_length=32, description="Default: the first.")] = None,
) -> schemas.Series:
    archive = _archive(request)
    record = _get(archive, campaign_id)
    try:
        return views.series(archive, record, stage)
    except NotFoundError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=str(exc)) from None
