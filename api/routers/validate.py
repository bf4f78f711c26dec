"""`POST /api/validate`: the sandbox's verdict on a loss, for users' own tooling.

The code runs only in the sandbox's isolated children (DESIGN.md section 3); this process sees
the verdict. Nothing is stored.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.concurrency import run_in_threadpool

from api import schemas
from api.auth import require_write
from api.state import sandbox_of
from api.views import finite
from sandbox import Candidate, SandboxUnavailableError

router = APIRouter(tags=["validate"])


@router.post(
    "/api/validate",
    response_model=schemas.Verdict,
    dependencies=[Depends(require_write)],
    responses={
        400: {"model": schemas.Problem, "description": "The body could not be read."},
        401: {"model": schemas.Problem, "description": "A token is needed."},
        503: {"model": schemas.Problem, "description": "The sandbox could not run."},
    },
    summary="Validate a loss in the sandbox (nothing is stored)",
)
async def validate(request: Request, body: schemas.ValidateRequest) -> schemas.Verdict:
    """An accepted verdict carries the fingerprint and the rebuilt graph; a rejected one names the
    layer, a code and the reason."""
    candidate = Candidate(name=body.name, thought=body.thought, code=body.code)
    try:
        verdict = await run_in_threadpool(sandbox_of(request).validate, candidate)
    except SandboxUnavailableError as exc:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, detail=f"the sandbox could not run: {exc}"
        ) from None
    data = finite(verdict.to_dict())
    data["reason"] = data.get("reason") or None
    return schemas.Verdict(**data)
