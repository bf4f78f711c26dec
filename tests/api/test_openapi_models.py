"""`/openapi.json` names every response model, describes every field of the API's own models,
and has one 422 shape (ValidationProblem), which is also what a bad parameter gets."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient
from pydantic import BaseModel

import api.schemas
import api.schemas_views
from api.app import create_app
from api.settings import Settings


def _api_models() -> set[str]:
    """Names of the pydantic models api/schemas*.py define (not the spec's, tested elsewhere)."""
    return {
        name
        for module in (api.schemas, api.schemas_views)
        for name, value in vars(module).items()
        if isinstance(value, type)
        and issubclass(value, BaseModel)
        and value.__module__ == module.__name__
        and not name.startswith("_")
    }


def test_models_are_named_described_and_422_has_one_shape(tmp_path: Path) -> None:
    app = create_app(Settings(database_url=f"sqlite:///{tmp_path / 'a.db'}"))
    with TestClient(app) as client:
        document = client.get("/openapi.json").json()
        bad = client.get("/api/campaigns/1/leaderboard", params={"limit": 0, "sort": "nope"})
    components = document["components"]["schemas"]
    assert not [n for n, s in components.items() if s.get("title", n).startswith("Response ")]
    assert "CampaignList" in components
    undescribed = [
        f"{name}.{field}"
        for name in _api_models() & set(components)
        for field, prop in components[name].get("properties", {}).items()
        if not prop.get("description")
    ]
    assert not undescribed, undescribed
    # Every model of the routes' responses is in the document, so the check above saw them.
    assert {"CandidateDetail", "LeaderboardPage", "Genealogy", "Comparison"} <= set(components)
    assert "HTTPValidationError" not in components and "ValidationError" not in components
    shapes = {
        response["content"]["application/json"]["schema"]["$ref"]
        for path in document["paths"].values()
        for operation in path.values()
        for code, response in operation["responses"].items()
        if code == "422"
    }
    assert shapes == {"#/components/schemas/ValidationProblem"}
    assert bad.status_code == 422
    assert {tuple(e["loc"]) for e in bad.json()["detail"]} == {
        ("query", "limit"),
        ("query", "sort"),
    }
    assert all(set(e) == {"loc", "msg", "type"} for e in bad.json()["detail"])
