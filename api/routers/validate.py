"""`POST /api/validate`: the sandbox's verdict on a loss, for users' own tooling.

The code runs only in the sandbox's isolated children (DESIGN.md section 3); this process sees
the verdict. Code refused by the sandbox's text checks (size cap, hidden characters) is refused
here, before the worker pool is started for it. Nothing is stored.
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, status
from fastapi.concurrency import run_in_threadpool

from api import schemas
from api.bodies import capped_route
from api.deps import RequireWrite, ValidatorDep
from api.views import finite
from discovery.service.validation import Candidate, SandboxUnavailableError

# The code field holds at most 200,000 characters: up to 6 bytes each as JSON escapes
# ("\u023e"), plus the other fields, ~1.3 MB. Larger bodies get 413 before they are read
# (bodies.py); a body under this cap with too long a field gets the schema's 422.
_MAX_BODY_BYTES = 2_000_000

router = APIRouter(
    tags=["validate"],
    route_class=capped_route(
        _MAX_BODY_BYTES,
        f"the request is larger than {_MAX_BODY_BYTES:,} bytes, the most /api/validate takes (a "
        "loss's code is at most 200,000 characters)",
    ),
)


@router.post(
    "/api/validate",
    response_model=schemas.Verdict,
    dependencies=[RequireWrite],
    responses={
        400: {"model": schemas.Problem, "description": "The body could not be read."},
        401: {"model": schemas.Problem, "description": "A token is needed."},
        413: {"model": schemas.Problem, "description": "A body over 1,000,000 bytes."},
        503: {"model": schemas.Problem, "description": "The sandbox could not run."},
    },
    summary="Validate a loss in the sandbox (nothing is stored)",
)
async def validate(validator: ValidatorDep, body: schemas.ValidateRequest) -> schemas.Verdict:
    """An accepted verdict carries the fingerprint and the rebuilt graph; a rejected one names the
    layer, a code and the reason."""
    candidate = Candidate(name=body.name, thought=body.thought, code=body.code)
    # Size and characters first (linear, microseconds): no worker pool starts for such code.
    verdict = validator.refusal(candidate)
    if verdict is None:
        try:
            verdict = await run_in_threadpool(validator.validate, candidate)
        except SandboxUnavailableError as exc:
            raise HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE, detail=f"the sandbox could not run: {exc}"
            ) from None
    data = finite(verdict.to_dict())
    data["reason"] = data.get("reason") or None
    return schemas.Verdict(**data)
