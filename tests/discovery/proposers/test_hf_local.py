"""hf-local: a tiny causal LM built locally; its junk becomes rejections with reasons."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from discovery.proposers.errors import ProposerConfigError, ProposerUnavailable
from discovery.proposers.llm.config import HFLocalConfig
from discovery.proposers.llm.hf_local import HFLocalClient, context_length
from discovery.proposers.llm.wiring import LLMSettings, build_llm_proposer
from discovery.spec import ProposerSpec
from evaluator import LLMCall
from sandbox import Sandbox
from tests.discovery.proposers.conftest import COLD_CONTEXT
from tests.discovery.tiny_lm import save_tiny_causal_lm

MESSAGES = [{"role": "system", "content": "Write a loss."}, {"role": "user", "content": "Go."}]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_causal_lm(tmp_path_factory.mktemp("tiny-lm") / "tiny")


def client(path: Path, seed: int, **config: object) -> HFLocalClient:
    settings = HFLocalConfig.model_validate({"path": str(path), "max_new_tokens": 40, **config})
    return HFLocalClient(
        settings,
        generator=torch.Generator().manual_seed(seed),
        context_tokens=context_length(str(path)),
    )


def test_a_seeded_generator_writes_the_same_text(tiny_model: Path) -> None:
    first = client(tiny_model, 1).complete(MESSAGES, model="tiny", json_mode="off", timeout_s=60)
    again = client(tiny_model, 1).complete(MESSAGES, model="tiny", json_mode="off", timeout_s=60)
    other = client(tiny_model, 2).complete(MESSAGES, model="tiny", json_mode="off", timeout_s=60)
    assert (first.text, first.completion_tokens) == (again.text, again.completion_tokens)
    assert first.text != other.text
    assert 0 < first.completion_tokens <= 40 and first.usage_reported


def test_a_long_prompt_keeps_its_end(tiny_model: Path) -> None:
    long = [{"role": "user", "content": "loss " * 2000 + "THE REQUEST"}]
    completion = client(tiny_model, 0).complete(long, model="tiny", json_mode="off", timeout_s=60)
    assert completion.prompt_tokens <= 256 - 40


def test_generation_stops_at_the_deadline(tiny_model: Path) -> None:
    slow = client(tiny_model, 0, max_new_tokens=200, timeout_s=1e-9)
    completion = slow.complete(MESSAGES, model="tiny", json_mode="off", timeout_s=1e-9)
    assert completion.completion_tokens <= 1  # the deadline had passed after the first token


def test_junk_is_rejected_with_reasons_never_raised(tiny_model: Path, sandbox: Sandbox) -> None:
    records: list[LLMCall] = []
    spec = ProposerSpec.model_validate(
        {"kind": "hf-local", "hf_local": {"path": str(tiny_model), "max_new_tokens": 48}}
    )
    proposer = build_llm_proposer(
        spec,
        np.random.default_rng(0),
        settings=LLMSettings(),
        recorder=records.append,
        validator=sandbox,
        dollar_budget=False,
    )
    for _ in range(2):
        proposals = proposer.propose(COLD_CONTEXT, 2)
        assert proposals, "junk is kept, as rejections"
        for p in proposals:
            assert p.origin == "hf-local" and p.model == "tiny"
            # Junk either holds no candidate (rejected here, with the parser's reason) or is
            # handed to the engine's sandbox, which rejects it with its own.
            assert p.rejection is None or "candidate" in p.rejection
    assert [r.purpose for r in records] == ["propose", "repair"] * 2
    assert all(r.cost_usd == 0 and r.error is None and r.completion_tokens > 0 for r in records)


def test_a_missing_directory_is_refused_when_the_proposer_is_built(tmp_path: Path) -> None:
    spec = ProposerSpec.model_validate(
        {"kind": "hf-local", "hf_local": {"path": str(tmp_path / "nowhere")}}
    )
    with pytest.raises(ProposerConfigError, match=r"proposer\.hf_local\.path"):
        build_llm_proposer(
            spec,
            np.random.default_rng(0),
            settings=LLMSettings(),
            recorder=lambda call: None,
            validator=None,
            dollar_budget=False,
        )


def test_weights_that_cannot_load_pause_the_campaign(tiny_model: Path, tmp_path: Path) -> None:
    broken = tmp_path / "config-only"
    broken.mkdir()
    config = json.loads((tiny_model / "config.json").read_text())
    (broken / "config.json").write_text(json.dumps(config))
    records: list[LLMCall] = []
    spec = ProposerSpec.model_validate({"kind": "hf-local", "hf_local": {"path": str(broken)}})
    proposer = build_llm_proposer(
        spec,
        np.random.default_rng(0),
        settings=LLMSettings(),
        recorder=records.append,
        validator=None,
        dollar_budget=False,
    )
    with pytest.raises(ProposerUnavailable, match="cannot load a causal LM"):
        proposer.propose(COLD_CONTEXT, 1)
    assert len(records) == 1 and "cannot load" in (records[0].error or "")
