"""From a spec's bytes to a document: the checks that come before any field is looked at.

A campaign spec is a small YAML or JSON mapping (a few kilobytes). Whatever arrives (a file given
to the CLI, a request body) is refused with one sentence when it is not that: larger than
`MAX_SPEC_BYTES`, not UTF-8 text, empty, nested deeper than `MAX_SPEC_DEPTH`, not parseable, or
not a mapping. Depth is bounded before it can hurt: PyYAML's composer and the json module both
recurse once per level, so 100,000 nested brackets would otherwise end in a RecursionError. JSON
is scanned for depth in one linear pass before it is parsed; YAML is composed by a loader that
counts levels as it goes (PyYAML's parser below the composer is an iterative state machine).

This module only parses: the fields are validated in `discovery.spec`, which imports the
evaluator. Keeping the two apart lets the CLI refuse a bad file without importing torch.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO, Literal

import yaml

# A spec is a few kilobytes; the API's request bodies have the same cap.
MAX_SPEC_BYTES = 1_000_000
# A spec is about 6 levels deep (spec > stages > 0 > config > judge > field); 64 leaves room for
# any stage config while staying far below Python's recursion limit.
MAX_SPEC_DEPTH = 64
# Values, counting a YAML alias once per use: refuses an "alias bomb" (each level repeating the
# one below), whose few hundred bytes would expand to billions of values when the spec is stored,
# and stops early on a megabyte of YAML values, which PyYAML takes seconds to read.
_MAX_SPEC_NODES = 100_000

SpecFormat = Literal["yaml", "json"]
_KINDS = {
    list: "a list",
    str: "a string",
    bool: "true or false",
    int: "a number",
    float: "a number",
}
# A JSON string (skipped: brackets inside it do not nest) or a bracket.
_JSON_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]')


Location = tuple[str | int, ...]  # where in the spec: ("stages", 0, "config", "beta")


class SpecError(ValueError):
    """A campaign spec that cannot be used; the message says what is wrong with it.

    `problems`: each bad field as (location, message), for callers that report fields one by
    one (the API's 422); empty when the document as a whole is wrong (the message says how).
    """

    def __init__(self, message: str, problems: list[tuple[Location, str]] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or []


def spec_format(path: Path) -> SpecFormat:
    """JSON for a `.json` file, YAML otherwise (YAML also reads most JSON)."""
    return "json" if path.suffix.lower() == ".json" else "yaml"


def read_spec_bytes(path: Path, *, max_bytes: int = MAX_SPEC_BYTES) -> bytes:
    """The file's bytes, reading no more than `max_bytes + 1` of them: a 50 MB file (or an endless
    pipe) is refused after the first megabyte, not read to its end."""
    try:
        with path.open("rb") as stream:
            return read_capped(stream, max_bytes=max_bytes, source=str(path))
    except OSError as exc:
        raise SpecError(f"cannot read {path}: {exc.strerror or exc}") from None


def read_capped(stream: BinaryIO, *, max_bytes: int, source: str) -> bytes:
    """Up to `max_bytes` from `stream`; SpecError if there is more."""
    data = stream.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise SpecError(too_large(source, max_bytes))
    return data


def too_large(source: str, max_bytes: int) -> str:
    return (
        f"{source} is larger than {max_bytes:,} bytes, the most a campaign spec may be (a spec "
        "is a few kilobytes of YAML or JSON): check that this is the spec file"
    )


def spec_document(data: bytes, *, fmt: SpecFormat, source: str) -> dict[str, Any]:
    """Decode and parse a spec's bytes into its top-level mapping; SpecError (one sentence naming
    `source`) for anything that is not a YAML or JSON mapping of bounded size and depth."""
    if len(data) > MAX_SPEC_BYTES:
        raise SpecError(too_large(source, MAX_SPEC_BYTES))
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(
            f"{source} is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}): "
            "a campaign spec is a YAML or JSON text file, saved as UTF-8"
        ) from None
    text = text.removeprefix("\ufeff")  # a byte-order mark some editors write
    if not text.strip():
        raise SpecError(f"{source} is empty: {_SHAPE}")
    name = fmt.upper()
    try:
        if fmt == "json":
            _check_json_depth(text, source)
            refuse = _non_finite(source)
            document = json.loads(text, parse_constant=refuse, parse_float=_finite(refuse))
        else:
            document = _load_yaml(text, source)
    except SpecError:
        raise
    except yaml.MarkedYAMLError as exc:
        where = f" at line {exc.problem_mark.line + 1}" if exc.problem_mark else ""
        raise SpecError(f"{source} is not valid YAML{where}: {_first_line(exc.problem)}") from None
    except json.JSONDecodeError as exc:
        raise SpecError(f"{source} is not valid JSON at line {exc.lineno}: {exc.msg}") from None
    except (yaml.YAMLError, ValueError, OverflowError) as exc:
        # Also what the value constructors raise: an integer of 5,000 digits, a 13th month.
        raise SpecError(f"{source} is not valid {name}: {_first_line(str(exc))}") from None
    if document is None:  # only comments, or `null`
        raise SpecError(f"{source} is empty: {_SHAPE}")
    if not isinstance(document, dict):
        kind = _KINDS.get(type(document), f"a {type(document).__name__} value")
        raise SpecError(f"{source} holds {kind}, not a mapping of fields: {_SHAPE}")
    return document


_SHAPE = (
    "a campaign spec is a mapping with at least `name`, `stages` and `budget` "
    "(see examples/quickstart.yaml)"
)


def _first_line(message: str | None) -> str:
    # Python's advice on its integer digit limit ("; use sys.set_int_max_str_digits()") is for
    # programmers, not for whoever wrote the spec.
    lines = (message or "").split("; use sys.")[0].strip().splitlines()
    return lines[0] if lines else "unreadable"


def _too_deep(source: str, line: int) -> SpecError:
    return SpecError(
        f"{source} nests more than {MAX_SPEC_DEPTH} levels deep (line {line}): a campaign spec is "
        "a few levels deep; check its brackets or indentation"
    )


def _non_finite(source: str) -> Callable[[str], float]:
    def refuse(constant: str) -> float:
        raise SpecError(f"{source} has {constant}: a campaign spec's numbers are finite")

    return refuse


def _finite(refuse: Callable[[str], float]) -> Callable[[str], float]:
    def parse(number: str) -> float:  # 1e400 overflows to inf
        value = float(number)
        return value if math.isfinite(value) else refuse(number)

    return parse


def _check_json_depth(text: str, source: str) -> None:
    """One pass over the text's brackets outside strings; refuses the first level too deep."""
    depth = 0
    for match in _JSON_TOKEN.finditer(text):
        token = match.group()
        if token in "[{":
            depth += 1
            if depth > MAX_SPEC_DEPTH:
                raise _too_deep(source, text.count("\n", 0, match.start()) + 1)
        elif token in "]}":
            depth -= 1


def _load_yaml(text: str, source: str) -> Any:
    loader = _BoundedLoader(text, source)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing documents nested more than MAX_SPEC_DEPTH levels (checked
    as each node is composed, before the recursion gets deep) or expanding to more than
    _MAX_SPEC_NODES nodes through aliases."""

    def __init__(self, stream: str, source: str) -> None:
        super().__init__(stream)
        self._source = source
        self._depth = 0
        self._nodes = 0
        self._sizes: dict[str, int] = {}  # anchor -> nodes under it
        self._open: set[str] = set()  # anchors of the nodes being composed

    def compose_node(self, parent: yaml.Node | None, index: object) -> yaml.Node:  # type: ignore[override]
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            if event.anchor in self._open:  # a value inside itself: endless once stored
                raise SpecError(
                    f"{self._source} has a YAML alias *{event.anchor} inside its own anchor "
                    f"(line {event.start_mark.line + 1}): a spec cannot contain itself"
                )
            self._count(self._sizes.get(event.anchor, 1))
            return super().compose_node(parent, index)
        if self.check_event(yaml.ScalarEvent):  # a leaf: no level of its own, no recursion
            self._count(1)
            return super().compose_node(parent, index)
        self._depth += 1
        if self._depth > MAX_SPEC_DEPTH:
            raise _too_deep(self._source, self.peek_event().start_mark.line + 1)
        before = self._nodes
        self._count(1)
        anchor = self.peek_event().anchor
        if anchor is not None:
            self._open.add(anchor)
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
            self._open.discard(anchor)
        if anchor is not None:
            self._sizes[anchor] = self._nodes - before
        return node

    def construct_yaml_float(self, node: yaml.ScalarNode) -> float:
        # .inf and .nan: no spec field takes them, and a database's JSON column refuses them.
        value = super().construct_yaml_float(node)
        if not math.isfinite(value):
            raise SpecError(
                f"{self._source} has {node.value} at line {node.start_mark.line + 1}: a campaign "
                "spec's numbers are finite"
            )
        return value

    def _count(self, nodes: int) -> None:
        self._nodes += nodes
        if self._nodes > _MAX_SPEC_NODES:
            raise SpecError(
                f"{self._source} holds more than {_MAX_SPEC_NODES:,} values (a YAML alias counts "
                "once per use): a campaign spec holds a few dozen; check that this is the spec "
                "file and what its aliases (*) repeat"
            )


_BoundedLoader.add_constructor("tag:yaml.org,2002:float", _BoundedLoader.construct_yaml_float)
