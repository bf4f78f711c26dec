"""Campaign specs: the example parses; bad specs are refused with the field named."""

from __future__ import annotations

from pathlib import Path

import pytest

from discovery.spec import SpecError, load_spec, parse_spec

ROOT = Path(__file__).resolve().parents[2]
MINIMAL = {"name": "x", "stages": [{"name": "bandit"}], "budget": {"candidates": 3}}


def test_the_quickstart_parses() -> None:
    spec = load_spec(ROOT / "examples" / "quickstart.yaml")
    assert [s.name for s in spec.stages] == ["bandit", "tinylm"]
    assert spec.proposer.kind == "evolve"
    assert spec.budget.candidates is not None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"stages": [{"name": "bandit", "promote_fraction": 2}]}, "stages.0.promote_fraction"),
        ({"stages": [{"name": "bandit", "tasks": ["chess"]}]}, "unknown bandit tasks ['chess']"),
        ({"stages": [{"name": "gpt5"}]}, "stages.0.name"),
        ({"budget": {}}, "set at least one budget"),
        ({"budgte": {"candidates": 1}}, "budgte: Extra inputs are not permitted"),
        ({"baselines": ["dpo", "nope"]}, "unknown baselines ['nope']"),
        ({"stages": []}, "stages: List should have at least 1 item"),
    ],
)
def test_bad_specs_name_the_field(change: dict, message: str) -> None:
    with pytest.raises(SpecError, match="invalid campaign spec") as error:
        parse_spec({**MINIMAL, **change})
    assert message in str(error.value)


def test_unreadable_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="cannot read"):
        load_spec(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("name: [unclosed\n")
    with pytest.raises(SpecError, match="not valid YAML"):
        load_spec(tmp_path / "bad.yaml")
