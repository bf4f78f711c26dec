"""`lossforge serve`: run the REST API and web page with uvicorn.

On SIGTERM (or Ctrl-C) the server first pauses the campaigns whose engines it started and ends
its event streams (`api.app.begin_shutdown`), then lets uvicorn wait up to `shutdown_grace_s` for
open connections before it cancels them, then waits for its engines to stop. Plain uvicorn would
wait for the streams first, which never end on their own while a campaign runs.
"""

from __future__ import annotations

from types import FrameType

import click
import uvicorn
from fastapi import FastAPI

from api.app import begin_shutdown, create_app
from api.settings import Settings
from discovery.archive import open_archive


class _Server(uvicorn.Server):
    """uvicorn's server, which starts the app's shutdown as soon as the signal arrives."""

    def __init__(self, config: uvicorn.Config, app: FastAPI) -> None:
        super().__init__(config)
        self.app = app

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if not self.should_exit:
            begin_shutdown(self.app)
        super().handle_exit(sig, frame)


@click.command()
@click.option("--host", default=None, help="Address [default: LOSSFORGE_HOST or 127.0.0.1].")
@click.option("--port", type=int, default=None, help="Port [default: LOSSFORGE_PORT or 8000].")
@click.pass_obj
def serve(settings: Settings, host: str | None, port: int | None) -> None:
    """Serve the API (and the web page) over HTTP."""
    # Opened (and upgraded) once before uvicorn starts: a wrong database URL is then one line
    # from the command group, not a traceback from the app's lifespan.
    open_archive(settings.database_url).engine.dispose()
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=host or settings.host,
        port=port or settings.port,
        log_level=settings.log_level.lower(),
        timeout_graceful_shutdown=max(1, round(settings.shutdown_grace_s)),
    )
    _Server(config, app).run()
