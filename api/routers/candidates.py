"""`/api/candidates/{id}`: a candidate's code, lineage and evaluations; its loss curve; the LLM
transcript that wrote it; the training curves of its runs; its export as a standalone Python
module. The transcript and the curves are discovery.service's; this router shapes them."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Response, status

from api import schemas, views
from api.boards import finite
from api.deps import ArchiveDep, BoardsDep, RequireRead
from api.schemas_views import Message, TrainingCurves, TrainingRun, Transcript, TranscriptCall
from discovery.archive import Archive, CandidateRecord, NotFoundError
from discovery.service.curves import CurveError, candidate_curve
from discovery.service.export import ExportError, export_module
from discovery.service.training import candidate_curves
from discovery.service.transcripts import candidate_transcript

router = APIRouter(prefix="/api/candidates", tags=["candidates"], dependencies=[RequireRead])

_NOT_FOUND = {404: {"model": schemas.Problem, "description": "No candidate with this id."}}
_CONFLICT = {409: {"model": schemas.Problem, "description": "It has no validated loss."}}


def _get(archive: Archive, candidate_id: schemas.CandidateId) -> CandidateRecord:
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
def read_candidate(
    archive: ArchiveDep, boards: BoardsDep, candidate_id: schemas.CandidateId
) -> schemas.CandidateDetail:
    record = _get(archive, candidate_id)
    return views.candidate_detail(archive, record, boards)


@router.get(
    "/{candidate_id}/loss-curve",
    response_model=schemas.LossCurve,
    responses={**_NOT_FOUND, **_CONFLICT},
    summary="The loss and its gradient vs the margin beta*delta, next to DPO's",
)
def loss_curve(archive: ArchiveDep, candidate_id: schemas.CandidateId) -> schemas.LossCurve:
    try:
        curve = candidate_curve(_get(archive, candidate_id))
    except CurveError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=str(exc)) from None
    return schemas.LossCurve(
        beta=curve.beta,
        margin=curve.margin,
        loss=curve.loss,
        grad=curve.grad,
        dpo=schemas.CurveValues(loss=curve.dpo_loss, grad=curve.dpo_grad),
    )


@router.get(
    "/{candidate_id}/transcript",
    response_model=Transcript,
    responses=_NOT_FOUND,
    summary="The LLM calls that wrote it: prompt, reply, model, tokens, cost, latency, repairs",
)
def transcript(archive: ArchiveDep, candidate_id: schemas.CandidateId) -> Transcript:
    try:
        found = candidate_transcript(archive, candidate_id)
    except NotFoundError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=str(exc)) from None
    return Transcript(
        candidate_id=found.candidate_id,
        origin=found.origin,
        model=found.model,
        prompt_hash=found.prompt_hash,
        note=found.note,
        calls=[
            TranscriptCall(
                **{
                    **c.__dict__,
                    "messages": [Message(role=m["role"], content=m["content"]) for m in c.messages],
                }
            )
            for c in found.calls
        ],
    )


@router.get(
    "/{candidate_id}/training-curves",
    response_model=TrainingCurves,
    responses=_NOT_FOUND,
    summary="Loss, reward margin and KL over steps of each run, with DPO's of the same seed",
)
def training_curves(archive: ArchiveDep, candidate_id: schemas.CandidateId) -> TrainingCurves:
    try:
        runs = candidate_curves(archive, candidate_id)
    except NotFoundError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=str(exc)) from None
    return TrainingCurves(
        candidate_id=candidate_id,
        runs=[
            TrainingRun(
                evaluation_id=r.evaluation_id,
                stage=r.stage,
                task=r.task,
                seed=r.seed,
                attempt=r.attempt,
                held_out=r.held_out,
                status=str(r.status),
                steps=r.steps,
                series=finite(r.series),
                dpo_steps=r.dpo_steps,
                dpo=finite(r.dpo) if r.dpo is not None else None,
            )
            for r in runs
        ],
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
def export(archive: ArchiveDep, candidate_id: schemas.CandidateId) -> Response:
    try:
        module = export_module(archive, candidate_id)
    except NotFoundError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=str(exc)) from None
    except ExportError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=str(exc)) from None
    return Response(
        module.text,
        media_type="text/x-python",
        headers={"Content-Disposition": f'attachment; filename="{module.filename}"'},
    )
