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

_FENCE = re.compile(r"```[ \t]*(?:python|py|python3)?[ \t]*\n(.*?)```", re.DOTALL | re.IGNORECASE)
_JSON_FENCE = re.compile(r"```[ \t]*json[ \t]*\n(.*?)```", re.DOTALL | re.IGNORECASE)
_DEF_NAME = re.compile(r"^\s*def\s+([A-Za-z_][A-Za-z0-9_]*)", re.MULTILINE)


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
    fenced_json = _JSON_FENCE.search(stripped)
    if fenced_json is not None:
        json_text = fenced_json.group(1).strip()
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
    blocks = _FENCE.findall(stripped)
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
    thought = _FENCE.sub("", stripped).strip()
    return Candidate(name=_default_name(code), thought=thought, code=code)


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
