"""The FastAPI application factory.

`create_app(settings)` wires the app: on start it opens the archive (upgrading its schema) and
builds what requests share (the leaderboard cache, the engine launcher, the validation sandbox),
which the routers reach through the dependencies of deps.py; on stop it pauses the campaigns
whose engines it started (they resume later from the archive), waits for those engines, and
releases the rest. `lossforge serve` calls `begin_shutdown` as soon as
SIGTERM arrives, so campaigns are paused first and event streams end (`app.state.stopping`)
before uvicorn waits for connections to close. It trains and execs nothing itself: engines run in
their own processes (launcher.py), candidate code only in the sandbox.

Collaborators can be injected (`launcher`), which tests use to run the API without starting
engines.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from importlib.metadata import version
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.boards import Boards
from api.launcher import Launcher
from api.routers import (
    campaigns,
    candidates,
    compare,
    events,
    health,
    leaderboards,
    metrics,
    validate,
    web,
)
from api.schemas import FieldError, ValidationProblem
from api.settings import Settings
from discovery import control
from discovery.archive import Archive, open_archive
from discovery.service.validation import SandboxConfig, SharedValidator

log = logging.getLogger(__name__)

LauncherFactory = Callable[[Archive], Launcher]


def default_launcher(settings: Settings) -> LauncherFactory:
    """Engines as `python -m api.cli run` children, with these settings in their environment."""

    def build(archive: Archive) -> Launcher:
        return Launcher(
            env=settings.child_environment(os.environ),
            log_dir=settings.data_dir / "logs",
            on_exit=lambda cid, code, path, pid: mark_engine_exit(archive, cid, code, path, pid),
        )

    return build


def mark_engine_exit(
    archive: Archive, campaign_id: int, code: int, log_path: Path, pid: int | None = None
) -> None:
    """An engine process that died without recording a stop leaves its campaign FAILED, with why.

    Not if another engine owns the campaign (this child was refused by the lease, or a newer
    engine took the campaign over): the lease of process `pid` of this host is the dead one's."""
    how = f"was killed by signal {-code}" if code < 0 else f"exited with status {code}"
    reason = (
        f"the engine process {how} before the campaign stopped (its log: {log_path}); "
        "resume the campaign to continue where it stopped"
    )
    lease = archive.get_campaign(campaign_id).lease
    mine = lease is not None and lease.pid == pid and lease.host == socket.gethostname()
    control.fail(archive, campaign_id, reason, dead_owner=lease.owner if mine and lease else None)


def create_app(settings: Settings, *, launcher: LauncherFactory | None = None) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        archive = open_archive(settings.database_url, lease_ttl_s=settings.lease_ttl_s)
        app.state.archive = archive
        app.state.boards = Boards(archive)
        app.state.launcher = (launcher or default_launcher(settings))(archive)
        app.state.validator = SharedValidator(SandboxConfig(pool_size=1))
        try:
            yield
        finally:
            _pause_own_campaigns(archive, app.state.launcher)
            app.state.stopping.set()
            app.state.launcher.close()
            app.state.validator.close()
            archive.engine.dispose()

    app = FastAPI(
        title="lossforge",
        version=version("lossforge"),
        summary="Discover preference-optimization losses with a proposer in the loop.",
        description="Start discovery campaigns, follow them, read their leaderboards and export "
        "the losses they find. When the server has `LOSSFORGE_API_TOKEN`, every write (POST) "
        "needs `Authorization: Bearer <token>`; reads too with `LOSSFORGE_API_READ_AUTH=true`.",
        lifespan=lifespan,
        docs_url=None,  # /docs is the web router's, with Swagger UI served locally
        redoc_url=None,  # ReDoc would load from a CDN
    )
    app.state.settings = settings
    app.state.stopping = threading.Event()  # set on shutdown: event streams end
    # plotly.min.js is 4.8 MB and a leaderboard page of 500 rows about 0.3 MB: both shrink ~4x.
    # Server-sent events stay uncompressed (the middleware skips text/event-stream, which a
    # compressor would hold back until its buffer fills).
    app.add_middleware(GZipMiddleware, minimum_size=1024, compresslevel=6)
    routers = (health, campaigns, leaderboards, events, candidates, compare, validate, metrics, web)
    for module in routers:
        app.include_router(module.router)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        # Starlette's 405 names only the methods of the first route whose path matched; a path
        # served by several routes (GET and POST /api/campaigns) must list them all.
        if exc.status_code == 405:
            methods = _documented_methods(app, request.url.path)
            if methods:
                exc.headers = {**(exc.headers or {}), "Allow": ", ".join(methods)}
        return await http_exception_handler(request, exc)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        # One 422 shape everywhere (ValidationProblem): where, what, which kind; never the
        # offending input echoed back (it may be a megabyte of spec, or a token).
        return JSONResponse(
            jsonable_encoder(validation_problem(exc.errors())),
            status_code=422,
        )

    return app


def validation_problem(errors: Any) -> ValidationProblem:
    """FastAPI's and pydantic's error entries reduced to the documented fields."""
    return ValidationProblem(
        detail=[
            FieldError(
                loc=list(e.get("loc", ())), msg=str(e.get("msg", "")), type=str(e.get("type", ""))
            )
            for e in errors
        ]
    )


_PROBLEM_REF = "#/components/schemas/ValidationProblem"


def _one_422_shape(schema: dict[str, Any]) -> None:
    """Every operation's 422 is a ValidationProblem, and FastAPI's own HTTPValidationError and
    ValidationError (never sent: the handler above answers instead) leave the document."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for model in (ValidationProblem, FieldError):
        if model.__name__ not in components:
            found = model.model_json_schema(ref_template="#/components/schemas/{model}")
            components.update(found.pop("$defs", {}))
            components[model.__name__] = found
    for path in schema.get("paths", {}).values():
        for operation in path.values():
            response = operation.get("responses", {}).get("422")
            if response is not None:
                response["content"] = {"application/json": {"schema": {"$ref": _PROBLEM_REF}}}
                if response.get("description") in (None, "", "Validation Error"):
                    response["description"] = "A bad field or parameter, named."
    components.pop("HTTPValidationError", None)
    components.pop("ValidationError", None)


def _openapi(app: FastAPI) -> dict[str, Any]:
    if app.openapi_schema is None:
        schema = get_openapi(
            title=app.title,
            version=app.version,
            summary=app.summary,
            description=app.description,
            routes=app.routes,
        )
        schema.setdefault("components", {}).setdefault("schemas", {}).update(
            campaigns.spec_schemas()
        )
        # The token is the server's choice (LOSSFORGE_API_TOKEN, LOSSFORGE_API_READ_AUTH): say
        # that each operation may also be called without one.
        for operation in (op for path in schema["paths"].values() for op in path.values()):
            if operation.get("security"):
                operation["security"] = [{}, *operation["security"]]
        _one_422_shape(schema)
        app.openapi_schema = schema
    return app.openapi_schema


def _documented_methods(app: FastAPI, path: str) -> list[str]:
    """The methods the OpenAPI document lists for the path that `path` fills in."""
    for template, item in app.openapi()["paths"].items():
        pattern = re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template))
        if re.fullmatch(pattern, path):
            return sorted(method.upper() for method in item)
    return []


def begin_shutdown(app: FastAPI) -> threading.Thread:
    """The first step of a server's shutdown (SIGTERM): pause the campaigns whose engines it
    started, then end the event streams, so that uvicorn's wait for open connections is short.
    Runs in a thread: a signal handler must not block on the database."""

    def run() -> None:
        try:
            archive = getattr(app.state, "archive", None)
            launcher = getattr(app.state, "launcher", None)
            if archive is not None and launcher is not None:
                _pause_own_campaigns(archive, launcher)
        except Exception:  # shutting down: the lifespan's own pause tries again
            log.exception("pausing this server's campaigns failed")
        finally:
            app.state.stopping.set()

    thread = threading.Thread(target=run, name="lossforge-shutdown", daemon=True)
    thread.start()
    return thread


def _pause_own_campaigns(archive: Archive, launcher: Launcher) -> None:
    for campaign_id in launcher.live():
        try:
            control.pause(archive, campaign_id, by="the API server stopped")
        except control.ControlError:
            continue  # it is stopping on its own
        log.info("campaign %s paused: the server is stopping", campaign_id)
