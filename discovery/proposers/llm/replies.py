"""Reading a model's reply into candidates: JSON first, fenced code blocks too, garbage as data.

`parse_reply(text, limit=n)` returns the candidates it found (`sandbox.Candidate`: name, thought,
code) and, for everything it could not use, a `Problem` with a reason the model can act on and an
excerpt of what it sent. It never raises: an empty, truncated or nonsensical reply is a problem,
which the proposer turns into a rejected proposal (stored with its reason) and, if repairs are on,
into a follow-up turn.

Accepted shapes, tried in order:
  1. JSON (the whole reply, a ```json block, or the first JSON value inside prose):
     {"candidates": [{"thought", "name", "code"}, ...]}, a list of such objects, or one object.
  2. Fenced ```python blocks (or unlabelled ones holding `def loss`), one candidate each; the
     prose around them is the thought.
  3. A bare `def loss(` in plain text: from there to the end is the code.
Reasoning models' `<think>...</think>` sections are dropped first. At most `limit` items are read.

It does not judge the code: the sandbox does.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from dataclasses import dataclass
from typing import Any

from sandbox import Candidate

__all__ = ["FORMAT_HINT", "Problem", "Reply", "parse_reply"]

FORMAT_HINT = (
    'reply with one JSON object {"candidates": [{"thought": ..., "name": ..., "code": ...}]} '
    "whose code fields each hold one `def loss(...)`"
)
_EXCERPT_CHARS = 2000
_THOUGHT_CHARS = 600
_MAX_JSON_STARTS = 64  # "{" positions tried inside prose (each try may read to the end)
_THINK = re.compile(r"<think>.*?</think>", re.DOTALL | re.IGNORECASE)
_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[ \t]*\n(.*?)```", re.DOTALL)
_BARE_DEF = re.compile(r"^def[ \t]+loss[ \t]*\(", re.MULTILINE)
_NAME_CHARS = re.compile(r"[^A-Za-z0-9_.-]+")


@dataclass(frozen=True)
class Problem:
    """Something in a reply that is not a usable candidate."""

    reason: str  # for the model and the archive: what is wrong and what to send instead
    excerpt: str  # what the model sent (cut), stored as the rejected candidate's source


@dataclass(frozen=True)
class Reply:
    candidates: tuple[Candidate, ...]
    problems: tuple[Problem, ...]


def parse_reply(text: str, *, limit: int) -> Reply:
    """Candidates and problems of one reply; see the module docstring."""
    body = _THINK.sub("", text).strip()
    if not body:
        why = "the reply is empty" if not text.strip() else "the reply holds only <think> text"
        return Reply((), (Problem(f"{why}; {FORMAT_HINT}", _cut(text)),))
    if values := _json_values(body):
        return _from_json(values[0], limit)
    blocks = [
        code
        for lang, code in _FENCE.findall(body)
        if lang.lower() in ("python", "py", "python3") or (not lang and "def loss" in code)
    ]
    if blocks:
        thought = _cut(_FENCE.sub(" ", body).strip(), _THOUGHT_CHARS)
        return Reply(tuple(_candidate(None, thought, code) for code in blocks[:limit]), ())
    bare = _BARE_DEF.search(body)
    if bare is not None:
        thought = _cut(body[: bare.start()].strip(), _THOUGHT_CHARS)
        return Reply((_candidate(None, thought, body[bare.start() :]),), ())
    return Reply((), (Problem(f"no candidate found in the reply; {FORMAT_HINT}", _cut(body)),))


def _json_values(body: str) -> list[Any]:
    """The reply's JSON value as a one-item list ([] for none): the whole text, else a ```json
    block, else the first object inside prose that has a "candidates" or "code" key (so that
    brackets in bare code are not mistaken for JSON)."""
    texts = [body]
    texts += [code for lang, code in _FENCE.findall(body) if lang.lower() in ("json", "")]
    decoder = json.JSONDecoder()
    for text in texts:
        try:
            return [json.loads(text)]
        except (ValueError, RecursionError):
            continue
    for match in itertools.islice(re.finditer(r"\{", body), _MAX_JSON_STARTS):
        try:
            value, _ = decoder.raw_decode(body, match.start())
        except (ValueError, RecursionError):
            continue
        if isinstance(value, dict) and ("candidates" in value or "code" in value):
            return [value]
    return []


def _from_json(value: Any, limit: int) -> Reply:
    if isinstance(value, dict) and isinstance(value.get("candidates"), list):
        items = value["candidates"]
    elif isinstance(value, list):
        items = value
    elif isinstance(value, dict) and "code" in value:
        items = [value]
    else:
        why = 'a JSON value without a "candidates" list or a "code" field'
        return Reply((), (Problem(f"the reply is {why}; {FORMAT_HINT}", _cut(_dump(value))),))
    if not items:
        return Reply((), (Problem(f'the "candidates" list is empty; {FORMAT_HINT}', "[]"),))
    candidates, problems = [], []
    for index, item in enumerate(items[:limit], 1):
        problem = _item_problem(item)
        if problem is None:
            candidates.append(_candidate(item.get("name"), item.get("thought", ""), item["code"]))
        else:
            problems.append(Problem(f"candidate {index}: {problem}; {FORMAT_HINT}", _dump(item)))
    return Reply(tuple(candidates), tuple(problems))


def _item_problem(item: Any) -> str | None:
    if not isinstance(item, dict):
        return f"expected an object, got {type(item).__name__}"
    code = item.get("code")
    if not isinstance(code, str) or not code.strip():
        return 'the "code" field is missing, empty or not a string'
    for key in ("name", "thought"):
        if key in item and not isinstance(item[key], str | None):
            return f'"{key}" must be a string'
    return None


def _candidate(name: str | None, thought: str | None, code: str) -> Candidate:
    clean = _NAME_CHARS.sub("-", name or "").strip("-.")[:60]
    if not clean:
        clean = "llm-" + hashlib.sha256(code.encode()).hexdigest()[:8]
    return Candidate(name=clean, thought=_cut((thought or "").strip(), _THOUGHT_CHARS), code=code)


def _dump(value: Any) -> str:
    return _cut(json.dumps(value, ensure_ascii=False, indent=1))


def _cut(text: str, limit: int = _EXCERPT_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
