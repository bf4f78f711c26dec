"""Campaign specs: the example parses; bad specs are refused with the field named."""

from __future__ import annotations

from pathlib import Path

import pytest

from discovery.spec import SpecError, load_spec, parse_spec
from evaluator.compare import stage_tasks
from evaluator.jobs import _build  # the conversion a worker applies to a job's config
from evaluator.scoring import score_metric
from evaluator.tinylm import TinyLMConfig

ROOT = Path(__file__).resolve().parents[2]
MINIMAL = {"name": "x", "stages": [{"name": "bandit"}], "budget": {"candidates": 3}}


def test_the_quickstart_parses() -> None:
    spec = load_spec(ROOT / "examples" / "quickstart.yaml")
    assert [s.name for s in spec.stages] == ["bandit", "tinylm"]
    assert spec.proposer.kind == "evolve"
    assert spec.budget.candidates is not None
    # What its claims rest on: >= 4 paired seeds at tinylm, elites confirmed on fresh seeds, on
    # every task family (>= 4 public, >= 2 held out).
    tinylm = spec.stages[1]
    assert tinylm.seeds >= 4 and tinylm.elite_seeds is not None and tinylm.elite_seeds > 4 + 2
    held = stage_tasks("tinylm", tinylm.config)
    assert tinylm.tasks is None
    assert sum(not h for h in held.values()) >= 4 and sum(held.values()) >= 2


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


def test_the_imdb_example_parses_without_loading_anything() -> None:
    spec = load_spec(ROOT / "examples" / "imdb.yaml")
    assert [s.name for s in spec.stages] == ["bandit", "tinylm", "hf"]
    hf = spec.stages[-1]
    assert hf.task_names() == ["beta=0.01", "beta=0.05", "beta=0.1", "beta=0.5", "beta=1.0"]
    assert hf.held_out_only()  # DiscoPOP held IMDb out: scored, never selected on
    assert score_metric("hf", hf.config) == "reward/mean"


HF = {"name": "hf", "config": {"model": "gpt2", "dataset": "prefs.jsonl"}}


@pytest.mark.parametrize(
    ("stages", "message"),
    [
        ([{**HF, "config": {**HF["config"], "beta": -1}}], "stages.0.config.beta: must be > 0"),
        (
            [{"name": "bandit"}, {**HF, "config": {**HF["config"], "lora": {"r": 0}}}],
            "stages.1.config.lora.r: must be >= 1",
        ),
        ([{**HF, "config": {"dataset": "d.jsonl"}}], "stages.0.config.model: is required"),
        ([{**HF, "tasks": ["beta=0.2"]}], "unknown hf tasks ['beta=0.2']; known: ['beta=0.1']"),
        (
            [{**HF, "config": {**HF["config"], "held_out": True}}, {"name": "bandit"}],
            "the hf stage has only held-out tasks, so it cannot promote",
        ),
        (
            [
                {
                    **HF,
                    "config": {
                        **HF["config"],
                        "judge": {"base_url": "http://x", "model": "m", "api_key": "sk-9"},
                    },
                }
            ],
            "stages.0.config.judge.api_key: API keys never go in a stage config",
        ),
    ],
)
def test_hf_stage_configs_are_checked_when_the_spec_is_read(
    stages: list[dict], message: str
) -> None:
    with pytest.raises(SpecError) as error:
        parse_spec({**MINIMAL, "stages": stages})
    assert message in str(error.value)
    assert "sk-9" not in str(error.value)


@pytest.mark.parametrize(
    ("stage", "message"),
    [
        ({"name": "tinylm", "config": {"max_step": 3}}, "unknown TinyLMConfig fields ['max_step']"),
        ({"name": "tinylm", "config": {"max_steps": "ten"}}, "max_steps must be an integer"),
        ({"name": "tinylm", "config": {"beta": True}}, "beta must be a number, got True"),
        ({"name": "tinylm", "config": {"model": {"n_layr": 3}}}, "fields ['model.n_layr']"),
        ({"name": "tinylm", "config": {"model": 3}}, "model must be a mapping of ModelConfig"),
        ({"name": "tinylm", "config": {"model": {"n_embd": 30}}}, "multiple of n_head"),
        ({"name": "bandit", "config": {"beta_grid": 0.1}}, "beta_grid"),
        ({"name": "bandit", "config": {"extra_label_noise": 0.5}}, "extra_label_noise"),
    ],
)
def test_proxy_stage_configs_are_checked_when_the_spec_is_read(stage: dict, message: str) -> None:
    # Before, a typo here reached every job of the stage, each failing with ERROR.
    with pytest.raises(SpecError) as error:
        parse_spec({**MINIMAL, "stages": [stage]})
    assert "stages.0" in str(error.value) and message in str(error.value)


def test_proxy_stage_configs_with_nested_fields_reach_the_job() -> None:
    spec = parse_spec(
        {**MINIMAL, "stages": [{"name": "tinylm", "config": {"model": {"n_layer": 3}}}]}
    )
    config = _build(TinyLMConfig, {**spec.stages[0].config, "cache_dir": "/tmp/x"})
    assert config.model.n_layer == 3 and config.model.n_embd == 64
    assert config.cache_dir == Path("/tmp/x")


def test_the_llm_example_parses() -> None:
    spec = load_spec(ROOT / "examples" / "llm.yaml")
    assert spec.proposer.kind == "llm" and spec.proposer.llm is not None
    assert spec.proposer.llm.base_url == "https://api.openai.com/v1"
    assert spec.proposer.llm.prices["gpt-4o-mini"].completion == 0.60
    assert spec.budget.llm_dollars == 2.0


@pytest.mark.parametrize(
    ("proposer", "message"),
    [
        ({"kind": "llm"}, "kind 'llm' needs the section proposer.llm"),
        ({"kind": "hf-local"}, "kind 'hf-local' needs the section proposer.hf_local"),
        ({"kind": "evolve", "llm": {}}, "proposer.llm is set but kind is 'evolve'"),
        ({"kind": "llm", "llm": {}, "options": {"max_depth": 3}}, "holds evolve settings"),
        ({"kind": "llm", "llm": {"model": "a", "models": ["b", "c"]}}, "`model` or `models`"),
        ({"kind": "llm", "llm": {"base_url": "localhost:8001"}}, "must start with http"),
        ({"kind": "llm", "llm": {"json_mode": "maybe"}}, "proposer.llm.json_mode"),
        ({"kind": "hf-local", "hf_local": {}}, "proposer.hf_local.path: Field required"),
    ],
)
def test_bad_proposer_sections_name_the_field(proposer: dict, message: str) -> None:
    with pytest.raises(SpecError, match="invalid campaign spec") as error:
        parse_spec({**MINIMAL, "proposer": proposer})
    assert message in str(error.value)


@pytest.mark.parametrize(
    "proposer",
    [
        {"kind": "llm", "llm": {"api_key": "sk-do-not-store-me"}},
        {"kind": "llm", "llm": {}, "api_key": "sk-do-not-store-me"},
        {"kind": "llm", "llm": {"token": "sk-do-not-store-me"}},
    ],
)
def test_a_spec_carrying_an_api_key_is_refused_without_echoing_it(proposer: dict) -> None:
    with pytest.raises(SpecError) as error:
        parse_spec({**MINIMAL, "proposer": proposer})
    assert "LOSSFORGE_LLM_API_KEY" in str(error.value)
    assert "sk-do-not-store-me" not in str(error.value)


def test_unreadable_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="cannot read"):
        load_spec(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("name: [unclosed\n")
    with pytest.raises(SpecError, match="not valid YAML"):
        load_spec(tmp_path / "bad.yaml")
