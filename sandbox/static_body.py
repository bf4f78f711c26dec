"""Layer 1, the function body: the per-node rules of the static check (see static.py).

Walks the body of the candidate's one function with an explicit stack (hostile nesting cannot
overflow the validator's stack) and raises `StaticRuleError` at the first node outside the
allow-lists: syntax (no loops, branches, lambdas, comprehensions, try, with, f-strings, walrus),
names (parameters, local variables, `torch`, `F`, `math`, `abs`), attributes (allowlist.py),
dunders, mutations (attribute, item and augmented assignment, `out=`, an in-place flag by name
or by position as in `F.leaky_relu(x, 0.1, True)`), constants (strings from a tiny set, no
bytes, no huge integers) and annotations.

It does not check the module's layout or the signature (static.py) and never runs anything.
"""

from __future__ import annotations

import ast
import functools
import inspect
import unicodedata
from collections.abc import Iterator

import torch.nn.functional as F

from sandbox import allowlist as al
from sandbox.verdict import RejectionCode

_MAX_INT_CONSTANT = 10**9
# fmt: off
_ALLOWED_BINOPS = (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Mod, ast.Pow, ast.BitAnd,
                   ast.BitOr, ast.BitXor)
_ALLOWED_UNARYOPS = (ast.USub, ast.UAdd, ast.Invert)
_ALLOWED_CMPOPS = (ast.Lt, ast.Gt, ast.LtE, ast.GtE, ast.Eq, ast.NotEq)
_ALLOWED_EXPRS = (ast.BinOp, ast.UnaryOp, ast.Compare, ast.Call, ast.Attribute, ast.Name,
                  ast.Constant, ast.Subscript, ast.Slice, ast.Tuple, ast.List)
# fmt: on
# Advice for syntax outside the allow-list, keyed by node type name.
_SYNTAX_ADVICE = {
    "If": "Python `if` is not allowed (a branch on tensor values cannot be captured); use "
    "torch.where",
    "IfExp": "`a if c else b` is not allowed (data-dependent); use torch.where(c, a, b)",
    "For": "loops are not allowed; use vectorized torch ops over the batch",
    "While": "loops are not allowed; use vectorized torch ops over the batch",
    "AsyncFor": "loops are not allowed; use vectorized torch ops over the batch",
    "ListComp": "comprehensions are loops; use vectorized torch ops (torch.stack of items)",
    "SetComp": "comprehensions are loops; use vectorized torch ops",
    "DictComp": "comprehensions are loops; use vectorized torch ops",
    "GeneratorExp": "comprehensions are loops; use vectorized torch ops",
    "Lambda": "lambda is not allowed; write the expression inline",
    "BoolOp": "`and`/`or` on tensors is data-dependent; use & and | on boolean tensors",
    "Try": "try/except is not allowed; a loss must not raise",
    "Raise": "raise is not allowed; a loss must not raise",
    "With": "with-blocks are not allowed",
    "JoinedStr": "f-strings are not allowed (format strings reach object internals)",
    "NamedExpr": "the walrus operator is not allowed; use a plain assignment",
    "Starred": "star-unpacking is not allowed; pass arguments explicitly",
    "Dict": "dict literals are not allowed",
    "Set": "set literals are not allowed",
    "FunctionDef": "nested functions are not allowed; define exactly one function",
    "ClassDef": "classes are not allowed; define exactly one function",
    "Global": "global/nonlocal is not allowed; a loss must be pure",
    "Nonlocal": "global/nonlocal is not allowed; a loss must be pure",
    "Delete": "del is not allowed",
    "Assert": "assert is not allowed; a loss must not raise",
    "AnnAssign": "annotated assignments are not allowed; write `name = value`",
    "Await": "async code is not allowed",
    "Yield": "generators are not allowed; return the per-example losses",
    "YieldFrom": "generators are not allowed; return the per-example losses",
}


class StaticRuleError(Exception):
    """A rule of layer 1 is broken; the message starts with the line number."""

    def __init__(self, code: RejectionCode, node: ast.AST | None, message: str) -> None:
        line = getattr(node, "lineno", None)
        super().__init__(f"line {line}: {message}" if line else message)
        self.code = code


def nfkc(name: str) -> str:
    return unicodedata.normalize("NFKC", name)


def is_docstring(node: ast.stmt) -> bool:
    return (
        isinstance(node, ast.Expr)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
    )


def attribute_chain(node: ast.Attribute) -> tuple[ast.expr, list[str]]:
    """`torch.nn.functional.relu` -> (Name torch, ["nn", "functional", "relu"])."""
    parts: list[str] = []
    current: ast.expr = node
    while isinstance(current, ast.Attribute):
        parts.append(nfkc(current.attr))
        current = current.value
    parts.reverse()
    return current, parts


def check_import(stmt: ast.Import | ast.ImportFrom) -> None:
    allowed = False
    if isinstance(stmt, ast.Import):
        allowed = all(
            (a.name, a.asname) in {("torch", None), ("math", None), ("torch.nn.functional", "F")}
            for a in stmt.names
        )
        shown = ", ".join(a.name for a in stmt.names)
    else:
        allowed = (
            stmt.module == "torch.nn"
            and stmt.level == 0
            and all((a.name, a.asname) == ("functional", "F") for a in stmt.names)
        )
        shown = f"from {stmt.module}"
    if not allowed:
        raise StaticRuleError(
            RejectionCode.FORBIDDEN_IMPORT,
            stmt,
            f"import {shown} is not allowed: only torch, torch.nn.functional as F "
            "and math are in scope (and already imported)",
        )


def check_identifier(name: str, node: ast.AST) -> None:
    if al.is_dunder(nfkc(name)):
        raise StaticRuleError(
            RejectionCode.DUNDER,
            node,
            f"double-underscore names ({nfkc(name)}) are not allowed",
        )


class BodyChecker:
    """Iterative walk over one function's body; raises `StaticRuleError` at the first violation."""

    def __init__(self, local_names: set[str]) -> None:
        self.locals = local_names  # parameters and names assigned in the body

    def check(self, func: ast.FunctionDef) -> None:
        for node, context in self._walk(func):
            self._check_node(node, context)

    # -- walk ----------------------------------------------------------------------------------
    def _walk(self, func: ast.FunctionDef) -> Iterator[tuple[ast.AST, str]]:
        """Yield (node, context) depth-first with an explicit stack; handlers prune subtrees."""
        stack: list[tuple[ast.AST, str]] = []
        for a in [*func.args.args]:
            if a.annotation is not None:
                stack.append((a.annotation, "annotation"))
        if func.returns is not None:
            stack.append((func.returns, "annotation"))
        for index, stmt in reversed(list(enumerate(func.body))):
            stack.append((stmt, "docstring" if index == 0 and is_docstring(stmt) else "stmt"))
        while stack:
            node, context = stack.pop()
            yield node, context
            stack.extend(reversed(self._children(node, context)))

    def _children(self, node: ast.AST, context: str) -> list[tuple[ast.AST, str]]:  # noqa: PLR0911
        if context in ("annotation", "docstring", "chain") or isinstance(
            node, ast.Import | ast.ImportFrom
        ):
            return []
        if isinstance(node, ast.Call):
            kids: list[tuple[ast.AST, str]] = [(node.func, "callee")]
            kids += [(a, "expr") for a in node.args]
            kids += [(k.value, "expr") for k in node.keywords]
            return kids
        if isinstance(node, ast.Attribute):
            root, _ = attribute_chain(node)
            if isinstance(root, ast.Name) and nfkc(root.id) in al.MODULE_NAMES:
                return []  # the whole chain was validated at its top
            return [(node.value, "expr")]
        if isinstance(node, ast.Assign):
            return [*((t, "target") for t in node.targets), (node.value, "expr")]
        if isinstance(node, ast.Compare):
            return [(node.left, "expr"), *((c, "expr") for c in node.comparators)]
        if isinstance(node, ast.Subscript):
            return [(node.value, "expr"), (node.slice, "expr")]
        kids = []
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.expr_context | ast.operator | ast.unaryop | ast.cmpop):
                continue
            kids.append((child, "target" if context == "target" else "expr"))
        return kids

    # -- per node ------------------------------------------------------------------------------
    def _check_node(self, node: ast.AST, context: str) -> None:  # noqa: PLR0912
        if context == "annotation":
            self._check_annotation(node)
            return
        if context == "docstring":
            return
        if isinstance(node, ast.stmt):
            self._check_statement(node)
            return
        if context == "target":
            self._check_target(node)
            return
        if not isinstance(node, _ALLOWED_EXPRS):
            self._forbidden_syntax(node)
        if isinstance(node, ast.Name):
            self._check_name(node, context)
        elif isinstance(node, ast.Attribute):
            self._check_attribute(node)
        elif isinstance(node, ast.Constant):
            self._check_constant(node)
        elif isinstance(node, ast.Call):
            self._check_call(node)
        elif isinstance(node, ast.BinOp) and not isinstance(node.op, _ALLOWED_BINOPS):
            raise StaticRuleError(
                RejectionCode.FORBIDDEN_SYNTAX,
                node,
                f"operator {type(node.op).__name__} is not allowed",
            )
        elif isinstance(node, ast.UnaryOp) and not isinstance(node.op, _ALLOWED_UNARYOPS):
            raise StaticRuleError(
                RejectionCode.FORBIDDEN_SYNTAX,
                node,
                "`not` on a tensor is data-dependent; use torch.logical_not or ~",
            )
        elif isinstance(node, ast.Compare):
            if len(node.ops) != 1:
                raise StaticRuleError(
                    RejectionCode.FORBIDDEN_SYNTAX,
                    node,
                    "chained comparisons use Python `and`; compare once and combine with &",
                )
            if not isinstance(node.ops[0], _ALLOWED_CMPOPS):
                raise StaticRuleError(
                    RejectionCode.FORBIDDEN_SYNTAX,
                    node,
                    f"comparison {type(node.ops[0]).__name__} is not allowed; use "
                    "<, <=, >, >=, ==, != on tensors",
                )
        context_kind = getattr(node, "ctx", None)
        if context_kind is not None and not isinstance(context_kind, ast.Load):
            raise StaticRuleError(
                RejectionCode.MUTATION, node, "only plain `name = value` assignments are allowed"
            )

    def _check_statement(self, node: ast.stmt) -> None:
        if isinstance(node, ast.Assign | ast.Return | ast.Expr | ast.Pass):
            if (
                isinstance(node, ast.Expr)
                and isinstance(node.value, ast.Constant)
                and isinstance(node.value.value, str)
            ):
                raise StaticRuleError(
                    RejectionCode.FORBIDDEN_CONSTANT,
                    node,
                    "a string statement is allowed only as the docstring",
                )
            return
        if isinstance(node, ast.Import | ast.ImportFrom):
            check_import(node)
            return
        if isinstance(node, ast.AugAssign):
            raise StaticRuleError(
                RejectionCode.MUTATION,
                node,
                "augmented assignment (`x += ...`) edits tensors in place; write `x = x + ...`",
            )
        self._forbidden_syntax(node)

    def _forbidden_syntax(self, node: ast.AST) -> None:
        kind = type(node).__name__
        advice = _SYNTAX_ADVICE.get(kind, f"{kind} is not allowed in a loss")
        raise StaticRuleError(RejectionCode.FORBIDDEN_SYNTAX, node, advice)

    def _check_target(self, node: ast.AST) -> None:
        if isinstance(node, ast.Name):
            name = nfkc(node.id)
            check_identifier(name, node)
            if name in al.MODULE_NAMES or name in al.BUILTIN_NAMES:
                raise StaticRuleError(
                    RejectionCode.MUTATION,
                    node,
                    f"assigning to {name!r} shadows a name in scope; pick another name",
                )
        elif isinstance(node, ast.Tuple | ast.List):
            return  # elements are visited as targets
        elif isinstance(node, ast.Attribute):
            raise StaticRuleError(
                RejectionCode.MUTATION,
                node,
                f"assigning to an attribute (.{node.attr}) changes shared state; "
                "attribute assignment is not allowed",
            )
        elif isinstance(node, ast.Subscript):
            raise StaticRuleError(
                RejectionCode.MUTATION,
                node,
                "item assignment (`x[...] = ...`) edits a tensor in place; build a new "
                "tensor with torch.where",
            )
        else:
            self._forbidden_syntax(node)

    def _check_name(self, node: ast.Name, context: str) -> None:
        name = nfkc(node.id)
        check_identifier(name, node)
        if name in self.locals:
            return
        if name in al.BUILTIN_NAMES and context == "callee":
            return
        if name in al.MODULE_NAMES:
            raise StaticRuleError(
                RejectionCode.FORBIDDEN_NAME, node, f"{name} may only be used as {name}.<function>"
            )
        raise StaticRuleError(
            RejectionCode.FORBIDDEN_NAME,
            node,
            f"name {name!r} is not available: only torch, F, math, abs, the parameters "
            "and your own variables are in scope",
        )

    def _check_attribute(self, node: ast.Attribute) -> None:
        root, parts = attribute_chain(node)
        for part in parts:
            check_identifier(part, node)
        if isinstance(root, ast.Name) and nfkc(root.id) in al.MODULE_NAMES:
            module = nfkc(root.id)
            if module in self.locals:
                raise StaticRuleError(RejectionCode.FORBIDDEN_NAME, node, f"{module} is shadowed")
            dotted = ".".join([module, *parts])
            if not _module_attribute_allowed(module, parts):
                raise StaticRuleError(
                    RejectionCode.FORBIDDEN_ATTRIBUTE,
                    node,
                    f"{dotted} is not on the allow-list; use pure torch/F/math "
                    "functions (no I/O, randomness, devices or global settings)",
                )
            return
        name = parts[-1]
        if name in al.TENSOR_METHODS or name in al.TENSOR_ATTRIBUTES:
            return
        if al.is_mutating_method(name):
            raise StaticRuleError(
                RejectionCode.MUTATION,
                node,
                f".{name}() edits a tensor in place; use the out-of-place .{name[:-1]}()",
            )
        raise StaticRuleError(
            RejectionCode.FORBIDDEN_ATTRIBUTE,
            node,
            f"tensor attribute .{name} is not on the allow-list",
        )

    def _check_constant(self, node: ast.Constant) -> None:
        value = node.value
        if isinstance(value, str):
            if value not in al.STRING_CONSTANTS:
                raise StaticRuleError(
                    RejectionCode.FORBIDDEN_CONSTANT,
                    node,
                    f"string constant {value[:20]!r} is not allowed; strings are "
                    f"limited to {sorted(al.STRING_CONSTANTS)}",
                )
        elif isinstance(value, bytes | complex):
            raise StaticRuleError(
                RejectionCode.FORBIDDEN_CONSTANT,
                node,
                f"{type(value).__name__} constants are not allowed",
            )
        elif (
            isinstance(value, int)
            and not isinstance(value, bool)
            and abs(value) > _MAX_INT_CONSTANT
        ):
            raise StaticRuleError(
                RejectionCode.FORBIDDEN_CONSTANT,
                node,
                "integer constant is too large; a loss needs no sizes beyond 10**9",
            )

    def _check_call(self, node: ast.Call) -> None:
        if not isinstance(node.func, ast.Attribute | ast.Name):
            raise StaticRuleError(
                RejectionCode.FORBIDDEN_SYNTAX,
                node,
                "call torch/F/math functions or tensor methods directly",
            )
        if isinstance(node.func, ast.Name) and nfkc(node.func.id) not in al.BUILTIN_NAMES:
            name = nfkc(node.func.id)
            check_identifier(name, node)
            raise StaticRuleError(
                RejectionCode.FORBIDDEN_NAME,
                node,
                f"calling {name!r} is not allowed: call torch/F/math functions, tensor "
                "methods or abs",
            )
        self._check_positional_inplace(node)
        for keyword in node.keywords:
            if keyword.arg is None:
                raise StaticRuleError(
                    RejectionCode.FORBIDDEN_SYNTAX,
                    node,
                    "**kwargs in calls is not allowed; pass keywords explicitly",
                )
            arg = nfkc(keyword.arg)
            check_identifier(arg, node)
            if arg == "out":
                raise StaticRuleError(
                    RejectionCode.MUTATION,
                    node,
                    "out= writes into an existing tensor; use the returned value",
                )
            if arg == "inplace" and not (
                isinstance(keyword.value, ast.Constant) and keyword.value.value is False
            ):
                raise StaticRuleError(
                    RejectionCode.MUTATION, node, "inplace= edits a tensor in place; leave it False"
                )

    def _check_positional_inplace(self, node: ast.Call) -> None:
        """`F.leaky_relu(x, 0.1, True)`: an in-place flag passed by position, not by name."""
        if not isinstance(node.func, ast.Attribute):
            return
        root, parts = attribute_chain(node.func)
        if not isinstance(root, ast.Name) or nfkc(root.id) not in ("F", "torch"):
            return
        if nfkc(root.id) == "torch" and parts[:2] != ["nn", "functional"]:
            return
        position = inplace_positions().get(parts[-1])
        if position is None or len(node.args) <= position:
            return
        flag = node.args[position]
        if not (isinstance(flag, ast.Constant) and flag.value is False):
            raise StaticRuleError(
                RejectionCode.MUTATION,
                node,
                f"F.{parts[-1]}'s argument {position + 1} is inplace, and anything but False "
                "edits a tensor in place; leave it out",
            )

    def _check_annotation(self, node: ast.AST) -> None:
        if isinstance(node, ast.Name) and nfkc(node.id) in {"float", "int"}:
            return
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and nfkc(node.value.id) == "torch"
            and nfkc(node.attr) in al.TORCH_ANNOTATIONS
        ):
            return
        raise StaticRuleError(
            RejectionCode.FORBIDDEN_SYNTAX,
            node,
            "annotations may only be torch.Tensor, float or int",
        )


@functools.cache
def inplace_positions() -> dict[str, int]:
    """F function name -> index of its `inplace` parameter, read from torch's own signatures."""
    positions: dict[str, int] = {}
    for name in sorted(al.F_FUNCTIONS):
        try:
            parameters = list(inspect.signature(getattr(F, name)).parameters)
        except (TypeError, ValueError):  # a builtin without a signature has no inplace flag
            continue
        if "inplace" in parameters:
            positions[name] = parameters.index("inplace")
    return positions


def _module_attribute_allowed(module: str, parts: list[str]) -> bool:
    if module == "F":
        return len(parts) == 1 and parts[0] in al.F_FUNCTIONS
    if module == "math":
        return len(parts) == 1 and parts[0] in al.MATH_NAMES
    if len(parts) == 1:
        return parts[0] in (
            al.TORCH_FUNCTIONS | al.TORCH_CONSTRUCTORS | al.TORCH_DTYPES | al.TORCH_CONSTANTS
        )
    if len(parts) == 2 and parts[0] == "special":
        return parts[1] in al.SPECIAL_FUNCTIONS
    if len(parts) == 3 and parts[:2] == ["nn", "functional"]:
        return parts[2] in al.F_FUNCTIONS
    return False
