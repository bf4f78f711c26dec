"""The app factory: upgrades the archive on start and reports health."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient
from sqlalchemy import inspect

from api.app import create_app
from api.settings import Settings
from discovery.archive import create_archive_engine, head_revision


def test_app_upgrades_the_archive_on_start_and_reports_health(
    new_database_url: Callable[[str], str],
) -> None:
    url = new_database_url("sqlite")
    app = create_app(Settings(database_url=url))
    with TestClient(app) as client:
        response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok" and body["schema_current"] is True
    assert body["database_revision"] == head_revision()
    engine = create_archive_engine(url)
    assert "evaluations" in inspect(engine).get_table_names()
    engine.dispose()


def test_openapi_schema_documents_health(new_database_url: Callable[[str], str]) -> None:
    app = create_app(Settings(database_url=new_database_url("sqlite")))
    with TestClient(app) as client:
        schema = client.get("/openapi.json").json()
    assert "/healthz" in schema["paths"]
