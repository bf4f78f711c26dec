"""The loss contract of DESIGN.md section 2: what a candidate is and which signatures are accepted.

A candidate is JSON `{"name", "thought", "code"}`; `code` defines exactly one function

    def loss(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps,
             beta, [chosen_lengths], [rejected_lengths], [refs_chosen_logps], [refs_rejected_logps])

returning per-example losses of shape (B,). The four log-prob tensors are (B,) summed log-probs of
the completion tokens, `beta` is a float (a 0-dim tensor inside graphs), `*_lengths` are (B,) int64
token counts and `refs_*` are (K, B) log-probs under K reference models. Optional parameters are
passed only when the function names them.

This module parses replies into `Candidate`s and judges signatures. It does not look at the
function body (that is `static.py`) and never runs anything.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

from sandbox.errors import CandidateParseError

REQUIRED_INPUTS: tuple[str, ...] = (
    "policy_chosen_logps",  # (B,)
    "policy_rejected_logps",  # (B,)
    "ref_chosen_logps",  # (B,)
    "ref_rejected_logps",  # (B,)
    "beta",  # float; 0-dim tensor inside graphs
)
OPTIONAL_INPUTS: tuple[str, ...] = (
    "chosen_lengths",  # (B,) int64 completion token counts
    "rejected_lengths",  # (B,) int64
    "refs_chosen_logps",  # (K, B) log-probs under K reference models
    "refs_rejected_logps",  # (K, B)
)
ALL_INPUTS: tuple[str, ...] = REQUIRED_INPUTS + OPTIONAL_INPUTS
POLICY_INPUTS: tuple[str, ...] = ("policy_chosen_logps", "policy_rejected_logps")

SIGNATURE_HELP = (
    "def loss(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps, "
    "beta) plus, only if used, any of chosen_lengths, rejected_lengths, refs_chosen_logps, "
    "refs_rejected_logps"
)

# Every pattern here is linear in its input: the info string after a fence is matched at one
# position (`_fence_blocks` finds fences with str.find), with possessive quantifiers, and the def
# scan's leading blanks cannot cross a line (a `\s*` there rescanned every following blank line
# from every line start: quadratic, 68 s of CPU for 150 KB of newlines).
_FENCE_INFO = re.compile(r"[ \t]*+([A-Za-z0-9]*+)[ \t]*+\n")  # possessive: no backtracking
_CODE_INFO = frozenset({"", "python", "py", "python3"})
_DEF_NAME = re.compile(r"^[ \t\f]*+def[ \t]++([A-Za-z_][A-Za-z0-9_]*)", re.MULTILINE)


@dataclass(frozen=True)
class Candidate:
    """One proposed loss: a short name, the proposer's reasoning, and the code."""

    name: str
    thought: str
    code: str


@dataclass(frozen=True)
class Parameter:
    """What the signature check needs to know about one parameter of the loss function."""

    name: str
    positional: bool  # a plain positional-or-keyword parameter (not *args, **kw, kw-only, pos-only)
    has_default: bool


def parse_candidate(text: str) -> Candidate:
    """Read a proposer reply: a JSON candidate (possibly fenced) or prose with a fenced code block.

    Raises `CandidateParseError` with a reason the proposer can act on.
    """
    stripped = text.strip()
    json_text = stripped
    fenced_json = _fence_blocks(stripped, frozenset({"json"}))
    if fenced_json:
        start, end = fenced_json[0][1]
        json_text = stripped[start:end].strip()
    if json_text.startswith("{"):
        try:
            data = json.loads(json_text)
        except (json.JSONDecodeError, RecursionError) as exc:
            raise CandidateParseError(
                f"reply is not valid JSON ({exc}); send one JSON object "
                'with "name", "thought" and "code"'
            ) from None
        if not isinstance(data, dict) or not isinstance(data.get("code"), str):
            raise CandidateParseError(
                'the JSON object needs a string field "code" holding the loss function'
            )
        name, thought = data.get("name", ""), data.get("thought", "")
        if not isinstance(name, str) or not isinstance(thought, str):
            raise CandidateParseError('"name" and "thought" must be strings')
        return Candidate(
            name=name.strip() or _default_name(data["code"]), thought=thought, code=data["code"]
        )
    fences = _fence_blocks(stripped, _CODE_INFO)
    blocks = [stripped[start:end] for _, (start, end) in fences]
    if not blocks:
        raise CandidateParseError(
            'no candidate found: send JSON {"name", "thought", "code"} or '
            "put the loss function in a ```python fenced block"
        )
    if len(blocks) > 1:
        raise CandidateParseError(
            f"found {len(blocks)} fenced code blocks; send exactly one, holding the loss function"
        )
    code = blocks[0]
    (outer_start, outer_end), _ = fences[0]
    thought = (stripped[:outer_start] + stripped[outer_end:]).strip()
    return Candidate(name=_default_name(code), thought=thought, code=code)


def _fence_blocks(text: str, info: frozenset[str]) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """Fenced blocks whose info string (lower-cased) is in `info`, in order, as ((fence start,
    fence end), (body start, body end)): a fence is three backticks, the info string and a
    newline; the body runs to the next three backticks. Linear: each str.find resumes where
    the last one stopped, and a fence without a closing one ends the search."""
    found = []
    position = 0
    while (opening := text.find("```", position)) != -1:
        header = _FENCE_INFO.match(text, opening + 3)
        if header is None or header.group(1).lower() not in info:
            position = opening + 1
            continue
        closing = text.find("```", header.end())
        if closing == -1:
            break
        found.append(((opening, closing + 3), (header.end(), closing)))
        position = closing + 3
    return found


def _default_name(code: str) -> str:
    match = _DEF_NAME.search(code)
    return match.group(1) if match else "candidate"


def signature_problem(params: Sequence[Parameter]) -> str | None:
    """None if the parameters form an accepted signature, else what to change (one sentence)."""
    names = [p.name for p in params]
    for p in params:
        if not p.positional:
            return (
                f"parameter {p.name!r} must be a plain parameter (no *args, **kwargs, "
                f"keyword-only or positional-only markers); expected {SIGNATURE_HELP}"
            )
        if p.has_default:
            return (
                f"parameter {p.name!r} has a default value; parameters take no defaults "
                "because the trainer passes every argument the function names"
            )
    if len(set(names)) != len(names):
        return "a parameter name is repeated"
    unknown = [n for n in names if n not in ALL_INPUTS]
    if unknown:
        return f"unknown parameter {unknown[0]!r}; expected {SIGNATURE_HELP}"
    if tuple(names[: len(REQUIRED_INPUTS)]) != REQUIRED_INPUTS:
        return f"the first five parameters must be, in order, {', '.join(REQUIRED_INPUTS)}"
    return None


def canonical_inputs(names: Sequence[str]) -> tuple[str, ...]:
    """The declared input names in contract order (required first, then optional ones)."""
    declared = set(names)
    return tuple(n for n in ALL_INPUTS if n in declared)
