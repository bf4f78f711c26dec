"""Building LLM proposers: settings fill what the spec leaves out; gaps are named; keys hidden."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydantic import SecretStr

from discovery.proposers.errors import ProposerConfigError
from discovery.proposers.llm.proposer import LLMProposer
from discovery.proposers.llm.wiring import LLMSettings, build_llm_proposer
from discovery.runner import RunnerConfig
from discovery.spec import ProposerSpec
from evaluator import LLMCall
from tests.discovery.proposers.conftest import COLD_CONTEXT
from tests.openai_server import Reply, ScriptedServer


def build(
    llm: dict, settings: LLMSettings, *, dollar_budget: bool = False, records: list | None = None
) -> LLMProposer:
    spec = ProposerSpec.model_validate({"kind": "llm", "llm": llm})
    return build_llm_proposer(
        spec,
        np.random.default_rng(0),
        settings=settings,
        recorder=(records if records is not None else []).append,
        validator=None,
        dollar_budget=dollar_budget,
    )


def test_settings_fill_in_what_the_spec_leaves_out(openai_server: ScriptedServer) -> None:
    openai_server.push(Reply(content='{"candidates": []}'))
    records: list[LLMCall] = []
    proposer = build(
        {"repair_attempts": 0},
        LLMSettings(base_url=openai_server.base_url, model="from-env"),
        records=records,
    )
    proposer.propose(COLD_CONTEXT, 1)
    assert openai_server.requests[0]["model"] == "from-env"
    assert records[0].model == "from-env"


def test_the_spec_wins_over_the_settings(openai_server: ScriptedServer) -> None:
    openai_server.push(Reply(content='{"candidates": []}'))
    elsewhere = ScriptedServer().start()
    try:
        proposer = build(
            {"base_url": openai_server.base_url, "model": "from-spec", "repair_attempts": 0},
            LLMSettings(base_url=elsewhere.base_url, model="from-env"),
        )
        proposer.propose(COLD_CONTEXT, 1)
    finally:
        elsewhere.close()
    assert openai_server.requests[0]["model"] == "from-spec" and elsewhere.requests == []


@pytest.mark.parametrize(
    ("llm", "settings", "message"),
    [
        ({"model": "m"}, LLMSettings(), "LOSSFORGE_LLM_BASE_URL"),
        ({"base_url": "http://localhost:8001/v1"}, LLMSettings(), "LOSSFORGE_LLM_MODEL"),
    ],
)
def test_missing_settings_are_named(llm: dict, settings: LLMSettings, message: str) -> None:
    with pytest.raises(ProposerConfigError, match=message):
        build(llm, settings)


def test_a_dollar_budget_needs_a_price_for_every_model() -> None:
    local = {"base_url": "http://localhost:11434/v1", "models": ["llama3.1", "gpt-4o-mini"]}
    with pytest.raises(ProposerConfigError, match=r"proposer\.llm\.prices\.llama3\.1"):
        build(local, LLMSettings(), dollar_budget=True)
    priced = {**local, "prices": {"llama3.1": {"prompt": 0, "completion": 0}}}
    build(priced, LLMSettings(), dollar_budget=True)  # gpt-4o-mini has a built-in price
    build(local, LLMSettings())  # no dollar budget: unpriced models simply cost 0


def test_the_key_is_masked_wherever_settings_are_shown(tmp_path: Path) -> None:
    key = "sk-very-secret-key-123"
    settings = LLMSettings(base_url="http://x/v1", model="m", api_key=SecretStr(key))
    config = RunnerConfig(database_url="sqlite://", cache_dir=tmp_path, llm=settings)
    assert key not in repr(config) and key not in str(config)
    proposer = build({}, settings)
    assert key not in repr(vars(proposer.caller)) and key not in repr(vars(proposer.caller.client))
