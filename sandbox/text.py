"""Layer 1, first of all: the source text is what it looks like, checked before anything parses it.

A reader (a person on the web page, a reviewer of an exported module) must see the code that runs.
Rules, each reported with the character's code point, name, line and column:

- size: the code is at most `max_source_bytes` UTF-8 bytes, a proposer's reply at most
  `REPLY_CAP_FACTOR` times that; checked before anything else, on the length alone.
- encoding: no lone surrogates (a JSON "\\ud800" escape; not encodable as UTF-8) and no U+FFFD
  REPLACEMENT CHARACTER (what undecodable bytes become when a file is read leniently).
- characters, anywhere (comments and strings included): no bidi controls (U+202A..U+202E,
  U+2066..U+2069, U+200E, U+200F, U+061C: Trojan Source, CVE-2021-42574); no other invisible
  format characters (Unicode category Cf: zero-width U+200B..U+200D, U+2060..U+2064, U+FEFF even
  as a leading byte-order mark, which Python refuses in a str anyway, soft hyphen U+00AD, tag
  characters U+E0000..U+E007F, ...) and no Hangul fillers (letters that render as nothing); no
  control characters but tab, newline, carriage return and form feed (terminal escapes would
  rewrite what `lossforge show` prints); no U+2028/U+2029, which editors show as line breaks where
  Python sees none.
- identifiers are ASCII (`identifier_problem`, after the parse): Python folds `ｅｖａｌ` to `eval`
  and reads a Cyrillic `е` in `bеta` as another name than `beta`, so non-ASCII names never show
  what runs. Other non-ASCII text (accents, symbols, emoji in comments or the docstring) is fine.

The character and size checks are linear: one length check, one scan with a single character
class (no backtracking is possible) that stops at printable ASCII at C speed, and per-character
work only for the non-ASCII and control characters it finds. `screen()` runs them on a candidate
(parsing a reply only after its size passed); `refusal()` is the same for entry points that want
a verdict without starting the sandbox (the CLI, `POST /api/validate`).

This module imports no torch (the CLI refuses oversized files without loading it) and does not
check the code's structure (static.py) or behaviour.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
import unicodedata
from dataclasses import dataclass

from sandbox.contract import Candidate, parse_candidate
from sandbox.errors import CandidateParseError, RejectionError
from sandbox.verdict import RejectionCode, Stage, Verdict, VerdictStatus

REPLY_CAP_FACTOR = 4  # a reply holds the code (JSON-escaped, or fenced) and the proposer's thought

_BIDI = frozenset({0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)})
_FILLERS = frozenset({0x115F, 0x1160, 0x3164, 0xFFA0})  # Hangul fillers: category Lo, no glyph
# Everything but printable ASCII and the four layout characters Python source uses.
_SUSPECT = re.compile(r"[^\t\n\r\f\x20-\x7e]")
_WHY = {  # what the character does, and what to do about it
    "bidi control": "reorders the code on screen, so readers do not see what runs; remove it",
    "invisible": "renders as nothing, so readers do not see what runs; remove it",
    "control character": "can hide text or rewrite a terminal that shows the code; remove it",
    "line separator": "shows as a line break in editors but is none to Python; remove it",
    "not valid UTF-8": "marks text that is not valid UTF-8; save the code as UTF-8",
}
_BOM_WHY = "is a byte-order mark, which renders as nothing; save the file as UTF-8 without one"


@dataclass(frozen=True)
class TextProblem:
    """Why the text is refused: a code and one sentence for the proposer."""

    code: RejectionCode
    reason: str

    def error(self) -> RejectionError:
        return RejectionError(Stage.STATIC, self.code, self.reason)


def too_large(size: int, cap: int, what: str = "code") -> TextProblem:
    """The refusal of `what`, `size` bytes long, over its cap."""
    return TextProblem(
        RejectionCode.SOURCE_TOO_LARGE,
        f"{what} is {size} bytes; the cap is {cap}: write a shorter loss",
    )


def size_problem(text: str, *, max_bytes: int, what: str = "code") -> TextProblem | None:
    """None when `text` is at most `max_bytes` in UTF-8. ASCII text (CPython knows it is ASCII
    without looking) is measured by its length, so no copy of a huge string is made."""
    size = len(text) if text.isascii() else len(text.encode("utf-8", errors="replace"))
    return too_large(size, max_bytes, what) if size > max_bytes else None


def character_problem(text: str) -> TextProblem | None:
    """The first character that hides what the code does (see the module docstring), or None."""
    for match in _SUSPECT.finditer(text):
        kind = _kind(match.group())
        if kind is not None:
            return _at(text, match.start(), kind)
    return None


def check(source: str, *, max_bytes: int) -> TextProblem | None:
    """Size, encoding and characters of candidate code, in linear time; None when it may go on."""
    return size_problem(source, max_bytes=max_bytes) or character_problem(source)


def identifier_problem(source: str, tree: ast.AST) -> TextProblem | None:
    """The first non-ASCII identifier in `source` (which parsed into `tree`), or None.

    The tokens show a name as written (the AST holds it NFKC-folded, `ｅｖａｌ` as `eval`). Only
    sources with non-ASCII text are tokenized; if the tokenizer fails where the parser did not,
    the parsed names of `tree` are checked instead (those catch every non-ASCII name that does
    not fold to ASCII).
    """
    if source.isascii():
        return None
    try:
        for token in tokenize.generate_tokens(io.StringIO(source).readline):
            if token.type == tokenize.NAME and not token.string.isascii():
                line, column = token.start
                offset = next(i for i, ch in enumerate(token.string) if not ch.isascii())
                return _identifier(token.string, token.string[offset], line, column + offset + 1)
    except (tokenize.TokenError, SyntaxError):
        for node in ast.walk(tree):
            for name in _names(node):
                if not name.isascii():
                    first = next(ch for ch in name if not ch.isascii())
                    return _identifier(name, first, getattr(node, "lineno", 0), None)
    return None


def screen(candidate: Candidate | str, *, max_source_bytes: int) -> Candidate:
    """`candidate` (parsed from a reply if it is text) once its size and characters pass.

    Raises RejectionError. A reply is measured before it is parsed, and the code before anything
    else looks at it, so no input makes this cost more than a linear scan of its capped size.
    """
    if isinstance(candidate, str):
        problem = size_problem(
            candidate, max_bytes=REPLY_CAP_FACTOR * max_source_bytes, what="the reply"
        )
        if problem is not None:
            raise problem.error()
        try:
            candidate = parse_candidate(candidate)
        except CandidateParseError as exc:
            raise RejectionError(Stage.PARSE, RejectionCode.CANDIDATE_FORMAT, exc.reason) from None
    problem = check(candidate.code, max_bytes=max_source_bytes)
    if problem is not None:
        raise problem.error()
    return candidate


def refusal(candidate: Candidate | str, *, max_source_bytes: int) -> Verdict | None:
    """The REJECTED verdict that `screen` gives `candidate`, or None when it may go on to the
    sandbox; for entry points that should not start the worker pool for an unreadable input."""
    try:
        screen(candidate, max_source_bytes=max_source_bytes)
    except RejectionError as exc:
        name = candidate.name if isinstance(candidate, Candidate) else "candidate"
        return Verdict(VerdictStatus.REJECTED, name, exc.stage, exc.code, exc.reason)
    return None


def rejected(name: str, problem: TextProblem) -> Verdict:
    """The REJECTED verdict for `problem` (for a file refused before it is read)."""
    return Verdict(VerdictStatus.REJECTED, name, Stage.STATIC, problem.code, problem.reason)


# -- helpers ----------------------------------------------------------------------------------


def _kind(ch: str) -> str | None:
    """Which rule `ch` breaks, or None for an allowed character."""
    point = ord(ch)
    if point in _BIDI:
        return "bidi control"
    category = unicodedata.category(ch)
    if category == "Cs" or point == 0xFFFD:
        return "not valid UTF-8"
    if category == "Cf" or point in _FILLERS:
        return "invisible"
    if category == "Cc":
        return "control character"
    if category in ("Zl", "Zp"):
        return "line separator"
    return None


def _describe(ch: str) -> str:
    point = ord(ch)
    name = unicodedata.name(ch, "")
    return f"U+{point:04X} {name}" if name else f"U+{point:04X}"


def _at(text: str, index: int, kind: str) -> TextProblem:
    before = text[:index]
    # Python ends lines at \n, \r\n and a lone \r.
    line = before.count("\n") + before.count("\r") - before.count("\r\n") + 1
    column = index - max(before.rfind("\n"), before.rfind("\r"))
    ch = text[index]
    why = _BOM_WHY if index == 0 and ch == "\ufeff" else _WHY[kind]
    return TextProblem(
        RejectionCode.UNSAFE_TEXT, f"line {line}, column {column}: {_describe(ch)} ({kind}) {why}"
    )


def _identifier(name: str, ch: str, line: int, column: int | None) -> TextProblem:
    where = f"line {line}" if column is None else f"line {line}, column {column}"
    return TextProblem(
        RejectionCode.UNSAFE_TEXT,
        f"{where}: the name {name!r} holds {_describe(ch)} (non-ASCII identifier); names must be "
        "ASCII, since a look-alike letter shows one name and runs another: spell it in ASCII",
    )


def _names(node: ast.AST) -> list[str]:
    """The identifiers a node introduces or uses, as parsed (NFKC-folded)."""
    if isinstance(node, ast.alias):
        return [n for n in (node.name, node.asname) if n is not None]
    for field in ("id", "attr", "arg", "name"):  # Name, Attribute, arg/keyword, def/class
        value = getattr(node, field, None)
        if isinstance(value, str):
            return [value]
    return []
