"""Prompts: the contract in the system prompt; the archive in the user prompt, within budget."""

from __future__ import annotations

import pytest

from discovery.proposers.base import Failure, Parent, ProposalContext
from discovery.proposers.llm.client import estimate_tokens
from discovery.proposers.llm.prompts import repair_prompt, system_prompt, user_prompt
from evaluator.baselines import BASELINES


def parent(i: int, name: str, *, score: float | None = 0.01, island: int = 0) -> Parent:
    return Parent(
        id=i,
        name=name,
        code=BASELINES[name].source,
        score=score,
        genome=None,
        island=island,
        metrics={
            "bandit/frontier/area": 0.5 + i / 100,
            "bandit/kl/ref": 0.25,
            "bandit/frontier/kl/beta=0.1": 9.99,  # a plot point: not shown
        },
    )


CONTEXT = ProposalContext(
    parents=(parent(1, "lrml", score=0.031), parent(2, "ipo", score=-0.002)),
    inspirations=(parent(3, "hinge", island=1), parent(4, "cell", island=1)),
    failures=(
        Failure("wrong-way", "def loss(a): return a", "the loss rewards the rejected answer"),
        Failure("imports", "import os\ndef loss(a): pass", "line 1: import os is not allowed"),
    ),
    island=0,
    stage_metric="bandit/frontier/area",
)


def test_the_system_prompt_states_the_contract_the_goal_and_the_format() -> None:
    text = system_prompt("bandit/frontier/area")
    assert (
        "def loss(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, "
        "ref_rejected_logps, beta):" in text
    )
    assert "torch, F (torch.nn.functional) and math" in text and "shape (B,)" in text
    assert "chosen_lengths" in text and "torch.where" in text and "no .item()" in text
    assert "higher than DPO on bandit/frontier/area" in text
    assert '{"candidates": [{"thought":' in text


def test_the_user_prompt_shows_the_archive_and_asks_for_n() -> None:
    parts = user_prompt(CONTEXT, 3, budget_tokens=100_000)
    text = parts.text
    assert text.startswith("Propose 3 new loss functions")
    assert "### lrml (score +0.0310 vs DPO)" in text and BASELINES["lrml"].source.strip() in text
    assert "bandit/frontier/area 0.51" in text and "bandit/kl/ref 0.25" in text
    assert "beta=0.1" not in text and "9.99" not in text
    assert "### hinge" in text  # diverse ones
    assert "- wrong-way: the loss rewards the rejected answer" in text
    assert "def loss(a): pass" in text  # the rejected code, when there is room
    assert parts.parent_ids == (1, 2)
    assert '3 in "candidates"' in text


def test_a_cold_start_says_nothing_is_scored() -> None:
    text = user_prompt(
        ProposalContext((), (), (), None, "bandit/frontier/area"), 1, budget_tokens=500
    )
    assert "Propose 1 new loss function for" in text.text and "Nothing has been scored" in text.text


@pytest.mark.parametrize("budget", [120, 200, 400, 700, 1000, 1500, 3000])
def test_the_prompt_fits_its_budget_dropping_the_least_useful_first(budget: int) -> None:
    parts = user_prompt(CONTEXT, 2, budget_tokens=budget)
    assert estimate_tokens(parts.text) <= budget
    text = parts.text
    # What is kept comes in this order of usefulness: best parent, rejection reasons, the next
    # parent, inspirations, rejected code.
    kept = [
        "### lrml" in text,
        "- wrong-way:" in text,
        "### ipo" in text,
        "### hinge" in text,
        "def loss(a): pass" in text,
    ]
    assert kept == sorted(kept, reverse=True), kept
    assert parts.parent_ids == tuple(
        i for i, name in ((1, "lrml"), (2, "ipo")) if f"### {name}" in text
    )


def test_the_budget_drops_parts_not_everything() -> None:
    small = user_prompt(CONTEXT, 2, budget_tokens=600).text
    assert "### lrml" in small and "### hinge" not in small


def test_a_real_tokenizer_can_count() -> None:
    words = user_prompt(CONTEXT, 2, budget_tokens=150, count=lambda t: len(t.split())).text
    assert len(words.split()) <= 150


def test_the_repair_turn_names_each_rejection_and_its_reason() -> None:
    text = repair_prompt(
        [("soft", "line 3: .item() reads a value"), ("", "no candidate found in the reply")]
    )
    assert "- candidate 'soft': line 3: .item() reads a value" in text
    assert "- your reply: no candidate found in the reply" in text
    assert "Send 2 corrected candidates" in text
