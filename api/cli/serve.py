"""`lossforge serve`: run the REST API and web page with uvicorn."""

from __future__ import annotations

import click
import uvicorn

from api.app import create_app
from api.settings import Settings


@click.command()
@click.option("--host", default=None, help="Address [default: LOSSFORGE_HOST or 127.0.0.1].")
@click.option("--port", type=int, default=None, help="Port [default: LOSSFORGE_PORT or 8000].")
@click.pass_obj
def serve(settings: Settings, host: str | None, port: int | None) -> None:
    """Serve the API (and the web page) over HTTP."""
    uvicorn.run(
        create_app(settings),
        host=host or settings.host,
        port=port or settings.port,
        log_level=settings.log_level.lower(),
    )
