"""`/openapi.json` shows a campaign spec's stage configs field by field: each stage kind its own
config model, and every field of every config with its type, default and description."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from api.app import create_app
from api.settings import Settings

STAGES = {"BanditStage": "BanditConfig", "TinyLMStage": "TinyLMConfig", "HFStage": "HFConfig"}


def test_every_stage_config_field_is_typed_and_described(tmp_path: Path) -> None:
    app = create_app(Settings(database_url=f"sqlite:///{tmp_path / 'a.db'}"))
    with TestClient(app) as client:
        schemas = client.get("/openapi.json").json()["components"]["schemas"]
    for stage, config in STAGES.items():
        assert schemas[stage]["properties"]["config"]["$ref"].endswith(f"/{config}")
    undocumented = []
    for name in [*STAGES, *STAGES.values(), "ModelConfig", "SFTConfig"]:
        for field, prop in schemas[name]["properties"].items():
            if "description" not in prop:
                undocumented.append(f"{name}.{field}")
            if not ({"type", "$ref", "anyOf", "allOf", "const", "enum"} & set(prop)):
                undocumented.append(f"{name}.{field} (no type)")
    assert not undocumented, undocumented
    beta = schemas["TinyLMConfig"]["properties"]["beta"]
    assert (beta["type"], beta["default"]) == ("number", 1.0)
