"""`GET /api/compare?ids=1,2`: two to six candidates side by side (per-task scores with their
95% intervals, mean reward and KL, and the first one's code diffed against each other's).

The numbers are discovery.service.compare's; this router parses the ids, renders the diffs
(api/render.py) and adds each candidate's leaderboard row from the shared cache. Loss and
gradient curves are not repeated here: the page reads each candidate's /loss-curve.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status
from fastapi.exceptions import RequestValidationError

from api import render, schemas, views
from api.boards import finite
from api.deps import ArchiveDep, BoardsDep, RequireRead
from api.schemas_views import CompareCandidate, CompareDiff, CompareTask, Comparison
from discovery.archive import NotFoundError
from discovery.service.compare import MAX_CANDIDATES, MIN_CANDIDATES, CompareError, compare

# 2 to 6 ids of at most 9 digits (below 2**31, the archive's id range), so the document says what
# is accepted and a client learns it before it asks.
IDS_PATTERN = (
    rf"^[1-9][0-9]{{0,8}}(,[1-9][0-9]{{0,8}}){{{MIN_CANDIDATES - 1},{MAX_CANDIDATES - 1}}}$"
)

router = APIRouter(prefix="/api/compare", tags=["candidates"], dependencies=[RequireRead])


def _ids(text: str) -> list[int]:
    """`1,2,3` as ids; a 422 naming the parameter for anything else."""
    try:
        ids = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        ids = []
    if not ids or any(not 1 <= i <= schemas.MAX_ID for i in ids):
        raise _invalid(f"ids must be candidate ids separated by commas, e.g. 1,2; got {text!r}")
    return ids


def _invalid(message: str) -> RequestValidationError:
    return RequestValidationError(
        [{"loc": ["query", "ids"], "msg": message, "type": "value_error"}]
    )


@router.get(
    "",
    response_model=Comparison,
    responses={
        404: {"model": schemas.Problem, "description": "A candidate id that does not exist."},
        422: {"model": schemas.ValidationProblem, "description": "Not 2 to 6 candidate ids."},
    },
    summary="Candidates side by side: per-task scores with intervals, reward, KL, code diffs",
)
def compare_candidates(
    archive: ArchiveDep,
    boards: BoardsDep,
    ids: Annotated[
        str,
        Query(
            max_length=100,
            pattern=IDS_PATTERN,
            description=f"2 to {MAX_CANDIDATES} candidate ids, comma-separated (e.g. 1,2).",
        ),
    ],
) -> Comparison:
    try:
        found = compare(archive, _ids(ids))
    except CompareError as exc:
        raise _invalid(str(exc)) from None
    except NotFoundError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=str(exc)) from None
    base = found[0].candidate
    candidates = []
    for item in found:
        c = item.candidate
        ranked = boards.get(c.campaign_id).by_id.get(c.id)
        candidates.append(
            CompareCandidate(
                id=c.id,
                name=c.name,
                campaign_id=c.campaign_id,
                origin=c.origin,
                status=str(c.status),
                source=c.source,
                row=views.leaderboard_row(*ranked, island=c.island) if ranked else None,
                tasks=[CompareTask(**finite(t.__dict__)) for t in item.tasks],
            )
        )
    diffs = [
        CompareDiff(
            base=base.id,
            other=item.candidate.id,
            diff=render.code_diff(
                base.source,
                item.candidate.source,
                parent=f"#{base.id} {base.name}",
                child=f"#{item.candidate.id} {item.candidate.name}",
            ),
        )
        for item in found[1:]
    ]
    return Comparison(candidates=candidates, diffs=diffs)
