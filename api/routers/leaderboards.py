"""A campaign's leaderboard (sorted, filtered, per-task scores, CSV and JSON downloads), its plot
series and its genealogy, all read from the shared leaderboard cache (api/boards.py).

Sorting and filtering are discovery.service.board_query's; this router turns query parameters
into a `BoardQuery` and a page into JSON or CSV. A download holds exactly the page the same
parameters show (offset and limit included).
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Response, status
from fastapi.concurrency import run_in_threadpool

from api import plots, schemas
from api.boards import Board, Boards, finite
from api.deps import ArchiveDep, BoardsDep, RequireRead
from api.schemas_views import Genealogy, GenealogyNode
from discovery.archive import NotFoundError
from discovery.service.board_query import SORT_KEYS, BoardQuery, SortKey, to_csv
from discovery.service.genealogy import campaign_genealogy

router = APIRouter(prefix="/api/campaigns", tags=["campaigns"], dependencies=[RequireRead])

_NOT_FOUND = {404: {"model": schemas.Problem, "description": "No campaign with this id."}}
_INVALID = {422: {"model": schemas.ValidationProblem, "description": "A bad parameter, named."}}


def board_query(
    sort: Annotated[
        SortKey, Query(description=f"Sort key, one of {', '.join(SORT_KEYS)}.")
    ] = "rank",
    order: Annotated[
        Literal["asc", "desc"] | None,
        Query(description="asc or desc; default: desc for scores, asc otherwise."),
    ] = None,
    stage: Annotated[
        str | None, Query(max_length=32, description="Only rows whose highest stage is this.")
    ] = None,
    status_: Annotated[
        str | None,
        Query(alias="status", max_length=32, description="Only candidates in this status."),
    ] = None,
    origin: Annotated[
        str | None, Query(max_length=32, description="Only this origin (baseline, evolve, ...).")
    ] = None,
    confirmation: Annotated[
        Literal["confirmed", "overfit", "unconfirmed"] | None,
        Query(description="Only rows with this confirmation."),
    ] = None,
    island: Annotated[
        int | None, Query(ge=0, le=schemas.MAX_ID, description="Only this island.")
    ] = None,
    q: Annotated[
        str | None,
        Query(max_length=200, description='Case-insensitive substring of the name, or "#<id>".'),
    ] = None,
    scored: Annotated[
        bool,
        Query(
            description="Only candidates with a score vs DPO (public or held-out): leaves out "
            "those rejected, duplicate, failed or not evaluated yet. Ranks stay those of the "
            "whole board."
        ),
    ] = False,
) -> BoardQuery:
    return BoardQuery(
        sort=sort,
        order=order,
        stage=stage,
        status=status_,
        origin=origin,
        confirmation=confirmation,
        island=island,
        q=q,
        scored=scored,
    )


QueryDep = Annotated[BoardQuery, Depends(board_query)]
Offset = Annotated[int, Query(ge=0, le=10_000_000, description="Rows to skip.")]
Limit = Annotated[int, Query(ge=1, le=500, description="Rows per page.")]
Tasks = Annotated[
    bool, Query(description='Add each row\'s per-task scores ("stage/task" keys, `columns`).')
]


async def _board(boards: Boards, campaign_id: int) -> Board:
    try:
        # Inline when the cached board is current; a query or a recomputation goes to a thread.
        return boards.peek(campaign_id) or await run_in_threadpool(boards.get, campaign_id)
    except NotFoundError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=str(exc)) from None


def _attachment(campaign_id: int, extension: str) -> dict[str, str]:
    name = f"campaign-{campaign_id}-leaderboard.{extension}"
    return {"Content-Disposition": f'attachment; filename="{name}"'}


@router.get(
    "/{campaign_id}/leaderboard",
    response_model=schemas.LeaderboardPage,
    responses={**_NOT_FOUND, **_INVALID},
    summary="Candidates ranked by highest stage reached, then score vs DPO; sorted, filtered",
)
async def leaderboard(
    boards: BoardsDep,
    campaign_id: schemas.CampaignId,
    query: QueryDep,
    offset: Offset = 0,
    limit: Limit = 50,
    tasks: Tasks = False,
) -> Response:
    """Rows have the fields of `lossforge leaderboard --json`, plus their rank and island.
    Served from the shared cache (boards.py) as pre-encoded JSON: the hot path of a busy
    server."""
    board = await _board(boards, campaign_id)
    body = board.page_json(campaign_id, offset=offset, limit=limit, query=query, tasks=tasks)
    return Response(body, media_type="application/json")


@router.get(
    "/{campaign_id}/leaderboard.json",
    response_model=schemas.LeaderboardPage,
    responses={**_NOT_FOUND, **_INVALID},
    summary="The same page as a JSON download",
)
async def leaderboard_json(
    boards: BoardsDep,
    campaign_id: schemas.CampaignId,
    query: QueryDep,
    offset: Offset = 0,
    limit: Limit = 50,
    tasks: Tasks = False,
) -> Response:
    page = await leaderboard(boards, campaign_id, query, offset=offset, limit=limit, tasks=tasks)
    page.headers.update(_attachment(campaign_id, "json"))
    return page


@router.get(
    "/{campaign_id}/leaderboard.csv",
    response_class=Response,
    responses={
        200: {
            "content": {"text/csv": {"schema": {"type": "string"}}},
            "description": "The page's rows: the row fields in their JSON order, then each "
            "task's score, low, high and n when tasks=true.",
        },
        **_NOT_FOUND,
        **_INVALID,
    },
    summary="The same page as a CSV download",
)
async def leaderboard_csv(
    boards: BoardsDep,
    campaign_id: schemas.CampaignId,
    query: QueryDep,
    offset: Offset = 0,
    limit: Limit = 50,
    tasks: Tasks = False,
) -> Response:
    board = await _board(boards, campaign_id)
    _, rows = board.page_rows(query, offset=offset, limit=limit, tasks=tasks)
    columns = board.columns if tasks else []
    return Response(
        to_csv(rows, columns),
        media_type="text/csv; charset=utf-8",
        headers=_attachment(campaign_id, "csv"),
    )


@router.get(
    "/{campaign_id}/series",
    response_model=schemas.Series,
    responses=_NOT_FOUND,
    summary="Plot data: best score vs DPO over time, reward vs KL with DPO's frontier",
)
def series(
    archive: ArchiveDep,
    boards: BoardsDep,
    campaign_id: schemas.CampaignId,
    stage: Annotated[
        str | None,
        Query(
            max_length=32, description="Default: the highest stage any proposed candidate reached."
        ),
    ] = None,
) -> schemas.Series:
    try:
        record = archive.get_campaign(campaign_id)
        return plots.series(archive, record, stage, boards.get(campaign_id))
    except NotFoundError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=str(exc)) from None


@router.get(
    "/{campaign_id}/genealogy",
    response_model=Genealogy,
    responses=_NOT_FOUND,
    summary="Every candidate with its parents, island and score: the family graph",
)
def genealogy(archive: ArchiveDep, boards: BoardsDep, campaign_id: schemas.CampaignId) -> Genealogy:
    try:
        found = campaign_genealogy(archive, campaign_id, boards.get(campaign_id).rows)
    except NotFoundError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=str(exc)) from None
    return Genealogy(
        campaign_id=found.campaign_id,
        islands=found.islands,
        nodes=[GenealogyNode(**finite(node.__dict__)) for node in found.nodes],
    )
