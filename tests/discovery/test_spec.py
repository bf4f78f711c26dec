"""Campaign specs: the example parses; bad specs are refused with the field named, and input
that is no spec at all (binary, empty, a list, too deep, too large) with one sentence."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from discovery.spec import SpecError, load_spec, parse_spec, read_spec
from discovery.spec_text import MAX_SPEC_BYTES, MAX_SPEC_DEPTH, read_capped, spec_document
from evaluator.catalogue import stage_tasks
from evaluator.scoring import score_metric
from evaluator.stage_configs import TinyLMConfig, parse_stage_config

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
        ({"stages": [{"name": "gpt5"}]}, "stages.0.name: unknown stage 'gpt5'; choose bandit"),
        ({"stages": [{"seeds": 2}]}, "stages.0.name: every stage needs a name; choose bandit"),
        ({"budget": {}}, "set at least one budget"),
        ({"budgte": {"candidates": 1}}, "budgte: unknown field; known: baselines, budget, "),
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
        (
            {"name": "tinylm", "config": {"max_step": 3}},
            "stages.0.config.max_step: unknown field; TinyLMConfig has ['beta', 'frontier_betas'",
        ),
        (
            {"name": "tinylm", "config": {"max_steps": "ten"}},
            "stages.0.config.max_steps: must be an integer, got 'ten'",
        ),
        (
            {"name": "tinylm", "config": {"beta": True}},
            "stages.0.config.beta: must be a number, got True",
        ),
        (
            {"name": "tinylm", "config": {"model": {"n_layr": 3}}},
            "stages.0.config.model.n_layr: unknown field; ModelConfig has ['arch', 'n_embd'",
        ),
        (
            {"name": "tinylm", "config": {"model": 3}},
            "stages.0.config.model: must be a mapping of ModelConfig fields",
        ),
        ({"name": "tinylm", "config": {"model": {"n_embd": 30}}}, "multiple of n_head"),
        ({"name": "bandit", "config": {"beta_grid": 0.1}}, "stages.0.config.beta_grid"),
        (
            {"name": "bandit", "config": {"extra_label_noise": 0.5}},
            "stages.0.config.extra_label_noise: must be in [0, 0.5)",
        ),
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
    config = spec.stages[0].config  # typed once, here; the job carries this object
    assert isinstance(config, TinyLMConfig)
    assert config.model.n_layer == 3 and config.model.n_embd == 64
    # What the spec stores reads back to the same config, by the one validator.
    stored = spec.model_dump(mode="json")["stages"][0]["config"]
    assert parse_stage_config("tinylm", stored) == config


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


def _block(levels: int) -> str:
    """YAML mappings nested `levels` deep by indentation (one space a level)."""
    return "".join(f"{' ' * i}k:\n" for i in range(levels)) + f"{' ' * levels}x: 1\n"


_NOT_A_SPEC = [
    (b"\x89PNG\r\n\x1a\n\x00\xff", "yaml", "is not UTF-8 text (byte 0x89 at offset 0)"),
    ("name: caf\u00e9".encode("latin-1"), "yaml", "is not UTF-8 text (byte 0xe9 at offset 9)"),
    (b"", "yaml", "is empty: a campaign spec is a mapping"),
    (b"  \n\n", "json", "is empty"),
    (b"# only a comment\n", "yaml", "is empty"),
    (b"null", "json", "is empty"),
    (b"- name: x\n", "yaml", "holds a list, not a mapping"),
    (b"hello", "yaml", "holds a string, not a mapping"),
    (b"3", "json", "holds a number, not a mapping"),
    (b"[" * 100_000 + b"]" * 100_000, "json", f"nests more than {MAX_SPEC_DEPTH} levels deep"),
    (b'{"a": ' * 100_000, "json", "nests more than 64 levels deep (line 1)"),
    (b"a: " + b"{b: " * 100_000, "yaml", "nests more than 64 levels deep"),
    (_block(1_000).encode(), "yaml", "nests more than 64 levels deep (line 65)"),
    (
        b"a: &a [x, x, x, x, x, x, x, x, x, x]\n"
        + b"".join(
            f"{c}: &{c} [{', '.join(['*' + p] * 10)}]\n".encode()
            for p, c in zip("abcdefgh", "bcdefghi", strict=True)
        ),
        "yaml",
        "holds more than 100,000 values (a YAML alias counts once per use)",
    ),
    (b"a: &x [1, *x]", "yaml", "alias *x inside its own anchor"),
    (b"seed: " + b"1" * 5_000, "yaml", "is not valid YAML: Exceeds the limit (4300 digits)"),
    (b"name: [unclosed\n", "yaml", "is not valid YAML at line 2"),
    (b'{"name": }', "json", "is not valid JSON at line 1: Expecting value"),
    (b'{"budget": {"wall_time_s": Infinity}}', "json", "has Infinity: a campaign spec's numbers"),
    (b'{"seed": 1e400}', "json", "has 1e400: a campaign spec's numbers are finite"),
    (b"a:\n  b: [1.0, .nan]", "yaml", "has .nan at line 2: a campaign spec's numbers are finite"),
]


@pytest.mark.parametrize(("data", "fmt", "message"), _NOT_A_SPEC)
def test_input_that_is_no_spec_document_gets_one_sentence(
    data: bytes, fmt: str, message: str
) -> None:
    with pytest.raises(SpecError) as error:
        spec_document(data, fmt=fmt, source="the-spec.yaml")  # type: ignore[arg-type]
    text = str(error.value)
    assert text.startswith("the-spec.yaml "), text
    assert message in text, text
    assert "\n" not in text and "sys.set_int_max_str_digits" not in text


def test_nesting_up_to_the_limit_parses_and_one_level_more_is_refused() -> None:
    deepest = {"k": 0}
    for _ in range(MAX_SPEC_DEPTH - 1):
        deepest = {"k": deepest}
    assert spec_document(json.dumps(deepest).encode(), fmt="json", source="s") == deepest
    assert spec_document(_block(MAX_SPEC_DEPTH - 1).encode(), fmt="yaml", source="s")
    with pytest.raises(SpecError, match="nests more than 64"):
        spec_document(json.dumps({"k": deepest}).encode(), fmt="json", source="s")
    with pytest.raises(SpecError, match="nests more than 64"):
        spec_document(_block(MAX_SPEC_DEPTH).encode(), fmt="yaml", source="s")


def test_brackets_in_strings_aliases_and_a_byte_order_mark_are_fine() -> None:
    text = '\ufeff{"name": "[[[[{{{{\\"[[[[", "x": [1]}'
    assert spec_document(text.encode(), fmt="json", source="s") == {
        "name": '[[[[{{{{"[[[[',
        "x": [1],
    }
    shared = b"base: &b {seeds: 2}\nstages: [{<<: *b, name: bandit}, {<<: *b, name: tinylm}]\n"
    assert spec_document(shared, fmt="yaml", source="s")["stages"][1] == {
        "seeds": 2,
        "name": "tinylm",
    }


class _CountingStream(io.RawIOBase):
    """An endless stream of spaces that counts the bytes asked of it."""

    def __init__(self) -> None:
        self.given = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        buffer[:] = b" " * len(buffer)
        self.given += len(buffer)
        return len(buffer)


def test_no_more_than_the_cap_is_read(tmp_path: Path) -> None:
    stream = _CountingStream()
    with pytest.raises(SpecError, match="is larger than 1,000,000 bytes"):
        read_capped(io.BufferedReader(stream), max_bytes=MAX_SPEC_BYTES, source="the pipe")
    # The buffered reader asks in blocks of 8 KiB: a block past the cap at most.
    assert MAX_SPEC_BYTES < stream.given <= MAX_SPEC_BYTES + 8192 + 1
    big = tmp_path / "big.yaml"
    with big.open("wb") as out:
        out.truncate(50_000_000)  # sparse: 50 MB of zeros that take no disk
    with pytest.raises(SpecError, match=f"{big} is larger than 1,000,000 bytes"):
        load_spec(big)


def test_data_that_is_not_a_mapping_gets_a_sentence_not_a_pydantic_type_error() -> None:
    for data in (None, [MINIMAL], "name: x"):
        with pytest.raises(SpecError) as error:
            parse_spec(data)
        assert "must be a mapping with at least `name`, `stages` and `budget`" in str(error.value)
        assert "dictionary" not in str(error.value)


def test_each_problem_has_its_location_for_callers_that_report_fields() -> None:
    # The API's 422 lists these one by one; the CLI prints the joined sentence.
    with pytest.raises(SpecError) as error:
        read_spec(
            b"name: t\nstages:\n  - name: tinylm\n    config: {model: {n_hed: 2}, max_steps: ten}\n"
            b"budget: {candidates: 1}\n",
            fmt="yaml",
            source="t.yaml",
        )
    problems = dict(error.value.problems)
    assert problems[("stages", 0, "config", "model", "n_hed")].startswith("unknown field")
    assert ("stages", 0, "config", "max_steps") in problems
    assert "stages.0.config.model.n_hed: unknown field" in str(error.value)
