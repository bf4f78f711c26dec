"""Reading replies: every shape a model may send, and garbage as problems, never exceptions."""

from __future__ import annotations

import json

import pytest

from discovery.proposers.llm.replies import parse_reply

CODE = (
    "def loss(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps,"
    " beta):\n"
    "    m = (policy_chosen_logps - ref_chosen_logps)"
    " - (policy_rejected_logps - ref_rejected_logps)"
    "\n    return F.softplus(-beta * m) + 0.1 * torch.relu(-m)\n"
)


def item(name: str = "soft", thought: str = "an idea") -> dict:
    return {"thought": thought, "name": name, "code": CODE}


@pytest.mark.parametrize(
    "text",
    [
        json.dumps({"candidates": [item("a"), item("b")]}),
        json.dumps([item("a"), item("b")]),
        "Here you go:\n```json\n" + json.dumps({"candidates": [item("a"), item("b")]}) + "\n```",
        "Sure! " + json.dumps({"candidates": [item("a"), item("b")]}) + " Hope it helps.",
        "<think>Let me think about [brackets] and {braces}.</think>\n"
        + json.dumps({"candidates": [item("a"), item("b")]}),
    ],
)
def test_json_in_its_usual_wrappings(text: str) -> None:
    reply = parse_reply(text, limit=5)
    assert [c.name for c in reply.candidates] == ["a", "b"]
    assert reply.problems == () and reply.candidates[0].code == CODE
    assert reply.candidates[0].thought == "an idea"


def test_a_single_object_is_one_candidate() -> None:
    reply = parse_reply(json.dumps(item("solo")), limit=5)
    assert [c.name for c in reply.candidates] == ["solo"]


def test_a_fenced_python_block_is_a_candidate_with_the_prose_as_thought() -> None:
    text = f"I scale the margin softly.\n\n```python\n{CODE}```\nThat should help."
    reply = parse_reply(text, limit=5)
    [candidate] = reply.candidates
    assert candidate.code == CODE and candidate.name.startswith("llm-")
    assert "scale the margin" in candidate.thought and "That should help" in candidate.thought


def test_bare_code_without_fences_is_read_from_def_loss() -> None:
    reply = parse_reply("Try this one:\n" + CODE, limit=5)
    [candidate] = reply.candidates
    assert candidate.code == CODE.strip() and candidate.thought == "Try this one:"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "the reply is empty"),
        ("   \n ", "the reply is empty"),
        ("<think>hmm, so many ideas", "no candidate found"),
        ("<think>only thinking</think>", "only <think> text"),
        ("I am sorry, I cannot help with that.", "no candidate found"),
        ("\x00\x01 garbage ]]{{ 42", "no candidate found"),
        ('{"ideas": ["a", "b"]}', 'without a "candidates" list'),
        ('{"candidates": []}', "list is empty"),
        ("42", 'without a "candidates" list'),
    ],
)
def test_garbage_is_a_problem_with_a_reason(text: str, reason: str) -> None:
    reply = parse_reply(text, limit=5)
    assert reply.candidates == ()
    [problem] = reply.problems
    assert reason in problem.reason and '{"candidates"' in problem.reason  # says what to send


def test_bad_items_are_problems_and_good_ones_survive() -> None:
    text = json.dumps(
        {"candidates": [item("ok"), {"name": "no-code"}, "just a string", {"code": 3}]}
    )
    reply = parse_reply(text, limit=10)
    assert [c.name for c in reply.candidates] == ["ok"]
    reasons = [p.reason for p in reply.problems]
    assert reasons[0].startswith('candidate 2: the "code" field is missing')
    assert reasons[1].startswith("candidate 3: expected an object, got str")
    assert reasons[2].startswith("candidate 4:")
    assert "no-code" in reply.problems[0].excerpt  # what the model sent is kept


def test_at_most_limit_items_are_read_and_names_are_cleaned() -> None:
    items = [item("cand 0 / ../x"), *(item(f"c{i}") for i in range(9))]
    reply = parse_reply(json.dumps(items), limit=3)
    assert len(reply.candidates) == 3
    assert reply.candidates[0].name == "cand-0-..-x"
    unnamed = parse_reply(json.dumps([{"code": CODE}]), limit=3).candidates[0]
    assert unnamed.name.startswith("llm-") and unnamed.thought == ""


def test_a_huge_reply_is_excerpted() -> None:
    reply = parse_reply("nonsense " * 5000, limit=3)
    [problem] = reply.problems
    assert len(problem.excerpt) <= 2000
