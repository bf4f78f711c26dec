"""`GET /healthz`: is the service up and its archive reachable and current."""

from __future__ import annotations

from importlib.metadata import version

from fastapi import APIRouter
from pydantic import BaseModel

from api.deps import ArchiveDep
from discovery.archive import current_revision, head_revision

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: str
    version: str
    database_revision: str | None
    schema_current: bool


@router.get("/healthz", response_model=Health)
def healthz(archive: ArchiveDep) -> Health:
    revision = current_revision(archive.engine)
    return Health(
        status="ok",
        version=version("lossforge"),
        database_revision=revision,
        schema_current=revision == head_revision(),
    )
