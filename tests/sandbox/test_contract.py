"""contract.py: reading proposer replies and judging signatures."""

from __future__ import annotations

import json

import pytest

from sandbox import CandidateParseError, parse_candidate
from sandbox.contract import Parameter, canonical_inputs, signature_problem
from tests.sandbox.sources import DPO


def test_json_candidate() -> None:
    text = json.dumps({"name": "dpo", "thought": "baseline", "code": DPO})
    assert parse_candidate(text) == parse_candidate(f"```json\n{text}\n```")
    candidate = parse_candidate(text)
    assert (candidate.name, candidate.thought, candidate.code) == ("dpo", "baseline", DPO)


def test_reply_with_fenced_code_block() -> None:
    candidate = parse_candidate(f"I try DPO.\n\n```python\n{DPO}```\nThat is all.")
    assert candidate.code == DPO
    assert candidate.name == "loss"  # from the def
    assert "I try DPO." in candidate.thought


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("no code here", "no candidate found"),
        ('{"name": "x"}', '"code"'),
        ('{"code": 3}', '"code"'),
        ('{"code": "x", "name": 3}', "must be strings"),
        ("{not json", "not valid JSON"),
        (f"```python\n{DPO}```\n```python\n{DPO}```", "exactly one"),
    ],
)
def test_unreadable_replies_say_what_to_send(text: str, fragment: str) -> None:
    with pytest.raises(CandidateParseError, match=None) as info:
        parse_candidate(text)
    assert fragment in info.value.reason


def _params(*names: str) -> list[Parameter]:
    return [Parameter(n, True, False) for n in names]


REQUIRED = (
    "policy_chosen_logps",
    "policy_rejected_logps",
    "ref_chosen_logps",
    "ref_rejected_logps",
    "beta",
)


@pytest.mark.parametrize(
    "extra", [(), ("chosen_lengths",), ("refs_rejected_logps", "chosen_lengths")]
)
def test_accepted_signatures(extra: tuple[str, ...]) -> None:
    assert signature_problem(_params(*REQUIRED, *extra)) is None


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        (_params(*REQUIRED[:4]), "first five"),
        (_params("beta", *REQUIRED[:4]), "first five"),
        (_params(*REQUIRED, "labels"), "unknown parameter 'labels'"),
        (_params(*REQUIRED, "beta"), "repeated"),
        ([*_params(*REQUIRED), Parameter("chosen_lengths", True, True)], "default"),
        ([*_params(*REQUIRED), Parameter("kwargs", False, False)], "plain parameter"),
    ],
)
def test_rejected_signatures(params: list[Parameter], fragment: str) -> None:
    problem = signature_problem(params)
    assert problem is not None and fragment in problem


def test_canonical_inputs_follow_the_contract_order() -> None:
    names = ("refs_chosen_logps", *REQUIRED, "chosen_lengths")
    assert canonical_inputs(names) == (*REQUIRED, "chosen_lengths", "refs_chosen_logps")
