"""The FastAPI application factory.

`create_app(settings)` wires the app: on start it opens the archive (upgrading its schema), on stop
it releases the database. It trains and execs nothing; the discovery engine does that.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import version

from fastapi import FastAPI

from api.routers import health
from api.settings import Settings
from discovery.archive import open_archive


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        archive = open_archive(settings.database_url)
        app.state.archive = archive
        try:
            yield
        finally:
            archive.engine.dispose()

    app = FastAPI(
        title="lossforge",
        version=version("lossforge"),
        summary="Discover preference-optimization losses with a proposer in the loop.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.include_router(health.router)
    return app
