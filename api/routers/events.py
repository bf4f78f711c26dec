"""`GET /api/campaigns/{id}/events`: the campaign's event log as server-sent events.

The engine appends every step to the `events` table (proposal, verdict, evaluation, stage_done,
promoted, elite, budget, finish, ...); this stream replays it from `after` (or the
`Last-Event-ID` header a reconnecting EventSource sends) and then follows it by polling the
archive, so it works whichever process runs the engine. Each message carries the event id as
`id:`, the kind as `event:` and `{id, kind, payload, created_at}` as `data:`. The stream ends after
a `finish` event once the campaign is no longer running (a resumed campaign keeps streaming), or at
once with `follow=false`. A campaign whose engine is gone (INTERRUPTED: its lease expired) is not
running either: its stream ends. So does every stream when the server shuts down
(`app.state.stopping`); an EventSource then reconnects, with `Last-Event-ID`, to whichever server
answers. A comment line every few seconds keeps proxies from closing it.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Query, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from api import schemas
from api.boards import finite
from api.deps import ArchiveDep, RequireRead, StoppingDep
from discovery.archive import Archive, CampaignStatus, EventRecord, NotFoundError

router = APIRouter(prefix="/api/campaigns", tags=["campaigns"])

POLL_S = 0.5
KEEPALIVE_S = 10.0
_BATCH = 500
_LIVE = (CampaignStatus.PENDING, CampaignStatus.RUNNING)
_STOPPED_GRACE_S = 3.0

# One server-sent event as a client parses it: `data` holds the JSON of one archive event.
_EVENT_SCHEMA = {
    "type": "object",
    "required": ["data", "event", "id"],
    "properties": {
        "id": {"type": "string", "description": "The event id (resume after it)."},
        "event": {"type": "string", "description": "The kind: proposal, verdict, finish, ..."},
        "retry": {"type": "integer"},
        "data": {
            "type": "string",
            "contentMediaType": "application/json",
            "contentSchema": {
                "type": "object",
                "required": ["id", "kind", "payload", "created_at"],
                "properties": {
                    "id": {"type": "integer"},
                    "kind": {"type": "string"},
                    "payload": {"type": "object"},
                    "created_at": {"type": ["string", "null"], "format": "date-time"},
                },
            },
        },
    },
}


def _message(event: EventRecord) -> str:
    data = {
        "id": event.id,
        "kind": event.kind,
        "payload": event.payload,
        "created_at": event.created_at.isoformat() if event.created_at else None,
    }
    # NaN is not JSON: a non-finite number in a payload becomes null.
    text = json.dumps(finite(data), default=str, allow_nan=False)
    return f"id: {event.id}\nevent: {event.kind}\ndata: {text}\n\n"


async def _follow(
    request: Request,
    archive: Archive,
    stopping: threading.Event,
    campaign_id: schemas.CampaignId,
    after: int,
    follow: bool,
) -> AsyncIterator[str]:
    last, last_kind = after, None
    quiet_since, stopped_since = time.monotonic(), None
    yield "retry: 3000\n\n"
    while not stopping.is_set():
        events = await run_in_threadpool(
            archive.list_events, campaign_id=campaign_id, after_id=last, limit=_BATCH
        )
        for event in events:
            yield _message(event)
            last, last_kind = event.id, event.kind
        if len(events) == _BATCH:
            continue  # more stored: no wait
        if not follow or await request.is_disconnected():
            return
        now = time.monotonic()
        if events:
            quiet_since = now
        current = await run_in_threadpool(archive.get_campaign, campaign_id)
        if current.status in _LIVE:
            stopped_since = None
        else:
            # The engine writes its status, then its `finish` event: end on that event, or after
            # a grace when none comes (a campaign paused before any engine ran).
            stopped_since = stopped_since or now
            if last_kind == "finish" or now - stopped_since >= _STOPPED_GRACE_S:
                return
        if now - quiet_since >= KEEPALIVE_S:
            quiet_since = now
            yield ": keep-alive\n\n"
        await asyncio.sleep(POLL_S)


@router.get(
    "/{campaign_id}/events",
    dependencies=[RequireRead],
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {"text/event-stream": {"schema": _EVENT_SCHEMA}},
            "description": "Server-sent events: `id`, `event` (the kind), `data` (JSON).",
        },
        404: {"model": schemas.Problem, "description": "No campaign with this id."},
    },
    summary="Follow a campaign's events (server-sent events)",
)
async def events(
    request: Request,
    archive: ArchiveDep,
    stopping: StoppingDep,
    campaign_id: schemas.CampaignId,
    after: Annotated[
        int, Query(ge=0, le=schemas.MAX_ID, description="Only events with a larger id.")
    ] = 0,
    follow: Annotated[bool, Query(description="Keep streaming new events.")] = True,
    last_event_id: Annotated[
        int | None, Header(ge=0, le=schemas.MAX_ID, include_in_schema=False)
    ] = None,
) -> StreamingResponse:
    try:
        # Checked before the stream starts: once it has, the status can no longer be 404.
        await run_in_threadpool(archive.get_campaign, campaign_id)
    except NotFoundError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=str(exc)) from None
    start = max(after, last_event_id or 0)
    return StreamingResponse(
        _follow(request, archive, stopping, campaign_id, start, follow),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
