"""`/api/candidates/{id}`: a candidate's code, lineage and evaluations; its loss curve; its export
as a standalone Python module."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Request, Response, status

from api import curves, schemas, views
from api.auth import require_read
from api.export import ExportError, export_module
from api.state import boards_of
from discovery.archive import Archive, CandidateRecord, NotFoundError
from sandbox.errors import GraphRejectedError

router = APIRouter(
    prefix="/api/candidates", tags=["candidates"], dependencies=[Depends(require_read)]
)

_NOT_FOUND = {404: {"model": schemas.Problem, "description": "No candidate with this id."}}
_CONFLICT = {409: {"model": schemas.Problem, "description": "It has no validated loss."}}


def _get(request: Request, candidate_id: schemas.CandidateId) -> CandidateRecord:
    archive: Archive = request.app.state.archive
    try:
        return archive.get_candidate(candidate_id)
    except NotFoundError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=str(exc)) from None


@router.get(
    "/{candidate_id}",
    response_model=schemas.CandidateDetail,
    responses=_NOT_FOUND,
    summary="Code, thought, origin, parents and lineage, verdict, every evaluation",
)
def read_candidate(request: Request, candidate_id: schemas.CandidateId) -> schemas.CandidateDetail:
    record = _get(request, candidate_id)
    return views.candidate_detail(request.app.state.archive, record, boards_of(request))


@router.get(
    "/{candidate_id}/loss-curve",
    response_model=schemas.LossCurve,
    responses={**_NOT_FOUND, **_CONFLICT},
    summary="The loss and its gradient vs the margin beta*delta, next to DPO's",
)
def loss_curve(request: Request, candidate_id: schemas.CandidateId) -> schemas.LossCurve:
    record = _get(request, candidate_id)
    graph = (record.graph or {}).get("json")
    if not isinstance(graph, str):
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            detail=f"candidate {candidate_id} is {record.status}: it has no validated loss graph",
        )
    try:
        loss, grad = curves.curve(graph)
    except GraphRejectedError as exc:
        raise HTTPException(
            status.HTTP_409_CONFLICT, detail=f"its graph is refused: {exc}"
        ) from None
    dpo_loss, dpo_grad = curves.dpo_curve()
    return schemas.LossCurve(
        beta=curves.BETA,
        margin=curves.margin_grid().tolist(),
        loss=loss,
        grad=grad,
        dpo=schemas.CurveValues(loss=dpo_loss, grad=dpo_grad),
    )


@router.get(
    "/{candidate_id}/export",
    response_class=Response,
    responses={
        200: {
            "content": {"text/x-python": {"schema": {"type": "string"}}},
            "description": "A module: the loss, provenance, a TRL trainer, a self-check.",
        },
        **_NOT_FOUND,
        **_CONFLICT,
    },
    summary="The loss as a standalone Python module",
)
def export(request: Request, candidate_id: schemas.CandidateId) -> Response:
    try:
        module = export_module(request.app.state.archive, candidate_id)
    except NotFoundError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=str(exc)) from None
    except ExportError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=str(exc)) from None
    return Response(
        module.text,
        media_type="text/x-python",
        headers={"Content-Disposition": f'attachment; filename="{module.filename}"'},
    )
