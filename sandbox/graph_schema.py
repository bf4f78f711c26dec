"""Layer 4: every call's arguments, by position and by keyword, checked against the op's signature.

What an argument does depends on the parameter it binds to: the third positional argument of
`F.leaky_relu` is `inplace`, the second of `x.to()` may be a device. Graph JSON is written by an
untrusted child (or by hand), so `check_call` binds each call's arguments to every signature of
its op that could accept them: TorchScript schemas for torch builtins and tensor methods (what
as `torch.fx.operator_schemas.get_signature_for_torch_op` finds them), `inspect.signature` for
Python-level functions (most of F.*), and a few schemas written here where Python's argument
parser takes forms TorchScript spells differently (`x.to(device)`, `x.float()`). Then one rule
holds for positional and keyword arguments alike, and a call is refused with
`GraphRejectedError` when:

- its arguments fit none of the op's signatures (MALFORMED_GRAPH);
- it passes an in-place flag that is not False, `out=` or any argument the schema marks as
  written, or `requires_grad` (a tensor that gathers gradients across calls) (MUTABLE_OP);
- it names a device other than a graph value's own `.device` (BAKED_DEVICE);
- a dtype is not a torch dtype, or it passes a layout, memory format, generator or pinned memory
  (MALFORMED_GRAPH).

Overload choice is permissive and the rule is strict: a value is tried against every overload
Python might pick for it (a 0-dim tensor may stand for a number, an int for a device), and every
overload it binds to must pass, so no argument escapes the rule through an overload this module
thought Python would not choose. This module checks arguments only; which ops are allowed is
allowlist.py's business, what a node yields is graph_kinds.py's.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.fx
from torch.jit._builtins import _find_builtin

from sandbox.errors import GraphRejectedError
from sandbox.graph_kinds import Kind
from sandbox.verdict import RejectionCode

_NUMBERS = frozenset({"bool", "int", "float", "number", "tensor"})  # 0-dim tensors pass as numbers
_INT_LIKE = {"IntType", "SymIntType", "BoolType", "FloatType", "NumberType"}
_NUMBER_TYPES = _INT_LIKE | {"TensorType", "ComplexType"}
_NONE_ONLY = frozenset({"layout", "memory_format", "generator", "pin_memory", "names"})
_KIND_CATEGORY = {
    Kind.TENSOR: "tensor",
    Kind.NUMBER: "number",
    Kind.SHAPE: "shape",
    Kind.MULTI: "multi",
    Kind.DTYPE: "dtype",
    Kind.DEVICE: "device",
}
_MEMORY = "*, MemoryFormat? memory_format=None) -> Tensor"
# Python's argument parser, not TorchScript, defines these methods' forms (python_variable_methods):
# `x.to(device)` alone and the dtype casts have no TorchScript schema of the same shape.
_PYTHON_METHOD_SCHEMAS: dict[str, tuple[str, ...]] = {
    "to": (
        "to(Tensor self, Device? device=None, ScalarType? dtype=None, bool non_blocking=False, "
        f"bool copy=False, {_MEMORY}",
        f"to(Tensor self, ScalarType dtype, bool non_blocking=False, bool copy=False, {_MEMORY}",
        f"to(Tensor self, Tensor other, bool non_blocking=False, bool copy=False, {_MEMORY}",
    ),
    **{
        cast: (f"{cast}(Tensor self, {_MEMORY}",)
        for cast in ("float", "double", "half", "bfloat16", "int", "long", "bool")
    },
}
# TorchScript type (real type first, then kind) -> the value categories that may bind to it.
_ACCEPTS: dict[str, frozenset[str] | None] = {
    "ScalarType": frozenset({"dtype"}),
    "Layout": None,  # the argument rule refuses any value
    "MemoryFormat": None,
    "StringType": frozenset({"str"}),
    "DeviceObjType": frozenset({"int", "number", "str", "device"}),
    **dict.fromkeys(_NUMBER_TYPES, _NUMBERS),
}
_BUILTIN_ARITY = {"getattr": 2}  # builtins without an inspectable signature


@dataclass(frozen=True, slots=True)
class _Param:
    name: str
    index: int
    positional: bool  # may be given by position (all positional parameters come first)
    keyword: bool  # may be given by keyword
    required: bool
    accepts: frozenset[str] | None  # value categories (see `_category`); None: anything
    writes: bool  # the schema marks it as written: `Tensor(a!) out`
    type_name: str  # for messages: "Optional[ScalarType]", "any"


@dataclass(frozen=True, slots=True)
class _Signature:
    params: tuple[_Param, ...]
    positional: int  # how many parameters may be given by position
    star_args: bool
    star_kwargs: bool
    spreads: bool  # a lone int-list parameter may be spread: x.view(2, -1) as x.view((2, -1))
    from_schema: bool  # Python adds requires_grad= to factory schemas; it is checked by name
    by_name: Mapping[str, _Param]


def _reject(code: RejectionCode, reason: str) -> GraphRejectedError:
    return GraphRejectedError(code, reason)


def check_call(
    op: str,
    target: str,
    function: Callable[..., Any] | None,
    args: Sequence[Any],
    kwargs: Mapping[str, Any],
    kinds: Mapping[torch.fx.Node, Kind],
) -> None:
    """Bind a call's arguments to its op's signatures and apply the argument rule (see above).

    `op` is call_function or call_method; `function` is the callable of a call_function target.
    Raises `GraphRejectedError` naming the op and the argument.
    """
    shown = f".{target}" if op == "call_method" else target
    for name, value in kwargs.items():  # keywords first: the clearest reason, whatever binds
        _check_argument(shown, name, value, None, writes=False, kinds=kinds)
    categories = [_category(v, kinds) for v in args]
    keyword_categories = {k: _category(v, kinds) for k, v in kwargs.items()}
    signatures = _signatures(op, target, function)
    offset = 1 if op == "call_method" else 0  # self is not counted as an argument
    for typed in (True, False):  # untyped: only to say which argument has the wrong type
        matched = False
        for signature in signatures:
            for call_args, call_categories in _spellings(signature, args, categories, offset):
                bound = _bind(signature, call_categories, keyword_categories, typed)
                if bound is None:
                    continue
                matched = True
                for param, index in bound:
                    value = kwargs[param.name] if index is None else call_args[index]
                    position = None if index is None else index + 1 - offset
                    _check_argument(shown, param.name, value, position, param.writes, kinds)
                    if not _fits(param, _category(value, kinds)):  # only when untyped
                        at = "keyword" if position is None else f"argument {position}"
                        raise _reject(
                            RejectionCode.MALFORMED_GRAPH,
                            f"malformed graph JSON: {shown} gets a {_category(value, kinds)} "
                            f"for {param.name} ({at}), which takes {param.type_name}; pass "
                            "the arguments the op documents",
                        )
        if matched:
            return
    keywords = ", ".join(sorted(kwargs)) or "none"
    raise _reject(
        RejectionCode.MALFORMED_GRAPH,
        f"malformed graph JSON: the arguments of {shown} ({len(args) - offset} positional; "
        f"keywords: {keywords}) fit none of its signatures; pass the arguments the op "
        "documents",
    )


def _check_argument(
    shown: str,
    name: str,
    value: object,
    position: int | None,
    writes: bool,
    kinds: Mapping[torch.fx.Node, Kind],
) -> None:
    """The one rule for an argument bound to parameter `name`, by keyword or at `position`."""
    where = f" (argument {position}, passed by position)" if position is not None else ""
    if (writes or name == "out") and value is not None:
        raise _reject(
            RejectionCode.MUTABLE_OP,
            f"{shown}({name}=...){where} writes into an existing tensor; use the returned value",
        )
    if name == "inplace" and value is not False:
        raise _reject(
            RejectionCode.MUTABLE_OP,
            f"{shown}(inplace={value!r}){where} edits a tensor in place; leave inplace out",
        )
    if name == "requires_grad" and value not in (None, False):
        raise _reject(
            RejectionCode.MUTABLE_OP,
            f"{shown}(requires_grad={value!r}){where} makes a tensor that gathers gradients "
            "across calls; leave requires_grad out",
        )
    if name == "device" and value is not None and _category(value, kinds) != "device":
        raise _reject(
            RejectionCode.BAKED_DEVICE,
            f"{shown}(device=...){where} names a fixed device; pass a graph value's own "
            "device (device=x.device) or use torch.*_like",
        )
    if name == "dtype" and value is not None and _category(value, kinds) != "dtype":
        raise _reject(
            RejectionCode.MALFORMED_GRAPH,
            f"malformed graph JSON: {shown}(dtype=...){where} must be a torch dtype "
            "(torch.float32, x.dtype)",
        )
    if name in _NONE_ONLY and value is not None and value is not False:
        raise _reject(
            RejectionCode.MALFORMED_GRAPH,
            f"malformed graph JSON: {shown}({name}=...){where} is not allowed in a loss graph; "
            "leave it out",
        )


def _category(value: object, kinds: Mapping[torch.fx.Node, Kind]) -> str:  # noqa: PLR0911
    """Coarse type of an argument value, as far as overload choice needs it."""
    if isinstance(value, torch.fx.Node):
        return _KIND_CATEGORY[kinds[value]]
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    if isinstance(value, torch.dtype):
        return "dtype"
    if isinstance(value, tuple | list):
        return "seq"
    return type(value).__name__  # slice, ellipsis: no parameter takes them


def _spellings(
    signature: _Signature, args: Sequence[Any], categories: list[str], first: int
) -> list[tuple[Sequence[Any], list[str]]]:
    """The argument lists to bind: as given and, for a spreadable int list, packed.

    `first` is 1 for methods: self stays in front, the rest is packed.
    """
    spellings: list[tuple[Sequence[Any], list[str]]] = [(args, categories)]
    if signature.spreads and len(args) - first > 1:
        packed = tuple(args[first:])
        spellings.append(((*args[:first], packed), [*categories[:first], "seq"]))
    return spellings


def _fits(param: _Param, category: str) -> bool:
    return param.accepts is None or category in param.accepts


def _bind(
    signature: _Signature,
    categories: list[str],
    keyword_categories: Mapping[str, str],
    typed: bool = True,
) -> list[tuple[_Param, int | None]] | None:
    """(parameter, index of the positional argument or None for a keyword) for each argument
    that binds to a parameter, or None when the call does not fit this signature.

    `typed=False` ignores the values' types (to name an argument of the wrong type).
    """
    if len(categories) > signature.positional and not signature.star_args:
        return None  # extra positional arguments beyond *args are Python's, bound to nothing
    pairs: list[tuple[_Param, int | None, str]] = [
        (param, index, category)
        for index, (param, category) in enumerate(
            zip(signature.params[: signature.positional], categories, strict=False)
        )
    ]
    for name, category in keyword_categories.items():
        param = signature.by_name.get(name)
        if param is None or not param.keyword:
            if signature.star_kwargs or (signature.from_schema and name == "requires_grad"):
                continue  # checked by name in check_call
            return None
        pairs.append((param, None, category))
    given = {p.name for p, _, _ in pairs}
    if (
        len(given) < len(pairs)  # one parameter given by position and by keyword
        or any(p.required and p.name not in given for p in signature.params)
        or (typed and not all(_fits(p, c) for p, _, c in pairs))
    ):
        return None
    return [(p, index) for p, index, _ in pairs]


@functools.cache
def _signatures(
    op: str, target: str, function: Callable[..., Any] | None
) -> tuple[_Signature, ...]:
    """Every signature of an op, built once per op; raises if none is known."""
    method = op == "call_method"
    signatures: list[_Signature] = []
    python_level = (
        getattr(torch.Tensor, target, None) if method else function
    )  # a Python function (F.relu, Tensor.norm) binds exactly as Python binds it
    if method and target in _PYTHON_METHOD_SCHEMAS:
        schemas = [torch._C.parse_schema(s) for s in _PYTHON_METHOD_SCHEMAS[target]]
        signatures = [s for s in (_from_schema(x, method) for x in schemas) if s is not None]
    elif inspect.isfunction(python_level):
        signatures = [_from_python(inspect.signature(python_level), method)]
    elif method:
        schemas = torch._C._jit_get_schemas_for_operator(f"aten::{target}")
        signatures = [s for s in (_from_schema(x, method) for x in schemas) if s is not None]
    elif target in _BUILTIN_ARITY:
        signatures = [_positional_only(_BUILTIN_ARITY[target])]
    elif function is not None:
        # The lookup fx's get_signature_for_torch_op makes, without its per-type eval() (slow).
        builtin = _find_builtin(function)
        schemas = torch._C._jit_get_schemas_for_operator(builtin) if builtin else []
        if schemas:
            signatures = [s for s in (_from_schema(x, method) for x in schemas) if s is not None]
        else:
            try:
                signatures = [_from_python(inspect.signature(function), method)]
            except (TypeError, ValueError):
                signatures = []
    if not signatures:  # a name on the allow-list with no signature: refuse rather than guess
        shown = f".{target}()" if method else target
        raise _reject(
            RejectionCode.UNKNOWN_OP,
            f"{shown} has no known signature to check its arguments against; it cannot be used",
        )
    return tuple(signatures)


def _accepts(jit_type: Any, real: str) -> frozenset[str] | None:
    """Value categories Python's argument parser may accept for a TorchScript type."""
    kind = jit_type.kind()
    if kind == "OptionalType":
        inner = _accepts(jit_type.getElementType(), real.removeprefix("Optional[")[:-1])
        return None if inner is None else inner | {"none"}
    if kind == "ListType":
        element = jit_type.getElementType().kind()
        return frozenset({"seq", "shape"}) | (_NUMBERS if element in _INT_LIKE else frozenset())
    return _ACCEPTS.get(real, _ACCEPTS.get(kind))  # None (anything) for Layout and the rest


def _from_schema(schema: Any, method: bool) -> _Signature | None:
    arguments = list(schema.arguments)
    if method:  # self comes first in a method call, wherever the schema lists it
        selves = [a for a in arguments if a.name == "self"]
        if len(selves) != 1:
            return None  # not callable as a method
        arguments = selves + [a for a in arguments if a.name != "self"]
    params = []
    for index, arg in enumerate(arguments):
        is_self = method and index == 0
        params.append(
            _Param(
                name="input" if arg.name == "self" and not method else arg.name,
                index=index,
                positional=not arg.kwarg_only,
                keyword=not is_self,
                required=not arg.has_default_value(),
                accepts=_accepts(arg.type, str(arg.real_type)),
                writes=bool(arg.is_write),
                type_name=str(arg.real_type),
            )
        )
    rest = [p for p in params[1 if method else 0 :] if p.positional]
    spreads = (
        len(rest) == 1
        and arguments[rest[0].index].type.kind() == "ListType"
        and arguments[rest[0].index].type.getElementType().kind() in _INT_LIKE
    )
    return _make(params, star_args=False, star_kwargs=False, spreads=spreads, from_schema=True)


def _from_python(signature: inspect.Signature, method: bool) -> _Signature:
    params = []
    star_args = star_kwargs = False
    for p in signature.parameters.values():
        index = len(params)  # a parameter's position; *args and **kwargs take none
        if p.kind is p.VAR_POSITIONAL:
            star_args = True
            continue
        if p.kind is p.VAR_KEYWORD:
            star_kwargs = True
            continue
        params.append(
            _Param(
                name=p.name,
                index=index,
                positional=p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD),
                keyword=p.kind is not p.POSITIONAL_ONLY and not (method and index == 0),
                required=p.default is p.empty,
                accepts=None,
                writes=False,
                type_name="any",
            )
        )
    return _make(params, star_args, star_kwargs, spreads=False, from_schema=False)


def _positional_only(arity: int) -> _Signature:
    params = [_Param(f"arg{i}", i, True, False, True, None, False, "any") for i in range(arity)]
    return _make(params, star_args=False, star_kwargs=False, spreads=False, from_schema=False)


def _make(
    params: list[_Param], star_args: bool, star_kwargs: bool, spreads: bool, from_schema: bool
) -> _Signature:
    return _Signature(
        params=tuple(params),
        positional=sum(1 for p in params if p.positional),
        star_args=star_args,
        star_kwargs=star_kwargs,
        spreads=spreads,
        from_schema=from_schema,
        by_name={p.name: p for p in params},
    )
