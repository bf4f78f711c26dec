"""Layer 1: static checks on candidate source, before any process runs it.

What is enforced: the text rules of text.py first (a size cap, valid UTF-8, no bidi controls,
invisible or control characters, in linear time before any parse); `ast.parse`; ASCII identifiers
(text.py); exactly one top-level function with an accepted signature (contract.py); nothing else
at top level but a docstring and the imports `import torch`, `import math`,
`import torch.nn.functional as F` (also allowed inside the function, as DiscoPOP's proposer wrote
them); an AST node allow-list (no loops, branches, lambdas, comprehensions, try, with, f-strings,
walrus, ...); names limited to the parameters, local variables, `torch`, `F`, `math` and `abs`;
attributes limited to the allow-listed `torch.*`, `F.*`, `math.*` names and tensor methods
(allowlist.py); no dunder names anywhere; no attribute, item or augmented assignment (they mutate
shared state or tensors in place); string constants only from a tiny set, plus docstrings.
Identifiers are also NFKC-normalized before checking, as Python does when it runs code (`ｅｖａｌ`
is `eval`), should the ASCII rule ever be bypassed. This module checks the layout and the
signature; the rules for the function body are in static_body.py.

What it does not do: run or import anything, or judge behaviour. Passing layer 1 does not make a
candidate safe; layers 2-5 hold on their own (tests run them with this layer switched off). The
walk over the tree is iterative, so hostile nesting cannot overflow the validator's stack.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

from sandbox import text
from sandbox.contract import Parameter, signature_problem
from sandbox.static_body import (
    BodyChecker,
    StaticRuleError,
    check_identifier,
    check_import,
    is_docstring,
    nfkc,
)
from sandbox.verdict import RejectionCode, Stage


@dataclass(frozen=True)
class StaticReport:
    """Result of layer 1: `ok` False with stage/code/reason, or True with the fields below."""

    ok: bool
    stage: Stage | None = None
    code: RejectionCode | None = None
    reason: str = ""
    function_name: str | None = None
    parameters: tuple[str, ...] = ()
    canonical_code: str | None = None


def canonicalize(source: str) -> str | None:
    """Best-effort canonical form (parsed and unparsed: NFKC names, no comments), else None."""
    try:
        return ast.unparse(ast.parse(source))
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None


def check(source: str, *, max_bytes: int) -> StaticReport:
    """Run layer 1 on `source`; never raises for any input string."""
    problem = text.check(source, max_bytes=max_bytes)  # linear; before anything parses
    if problem is not None:
        return StaticReport(False, Stage.STATIC, problem.code, problem.reason)
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        return StaticReport(
            False,
            Stage.PARSE,
            RejectionCode.SYNTAX_ERROR,
            f"line {exc.lineno}: {exc.msg}; send valid Python",
        )
    except (ValueError, RecursionError, MemoryError) as exc:
        return StaticReport(
            False,
            Stage.PARSE,
            RejectionCode.SYNTAX_ERROR,
            f"code cannot be parsed ({type(exc).__name__}); send plain, shallow Python",
        )
    problem = text.identifier_problem(source, tree)
    if problem is not None:
        return StaticReport(False, Stage.STATIC, problem.code, problem.reason)
    try:
        func = _check_module(tree)
    except StaticRuleError as exc:
        return StaticReport(False, Stage.STATIC, exc.code, str(exc))
    try:
        canonical: str | None = ast.unparse(tree)
    except (RecursionError, ValueError):
        canonical = None
    return StaticReport(
        True,
        function_name=nfkc(func.name),
        parameters=tuple(nfkc(a.arg) for a in func.args.args),
        canonical_code=canonical,
    )


def _check_module(tree: ast.Module) -> ast.FunctionDef:
    """Module layout and signature, then the body rules; returns the one function."""
    funcs = [n for n in tree.body if isinstance(n, ast.FunctionDef)]
    if len(funcs) != 1:
        found = "no function" if not funcs else f"{len(funcs)} functions"
        raise StaticRuleError(
            RejectionCode.STRUCTURE,
            None,
            f"code defines {found}; define exactly one function, def loss(...)",
        )
    for index, stmt in enumerate(tree.body):
        if stmt is funcs[0] or (index == 0 and is_docstring(stmt)):
            continue
        if isinstance(stmt, ast.Import | ast.ImportFrom):
            check_import(stmt)
            continue
        raise StaticRuleError(
            RejectionCode.STRUCTURE,
            stmt,
            f"top-level {type(stmt).__name__} is not allowed; only the imports of "
            "torch, F and math and one function may appear at top level (put "
            "constants inside the function)",
        )
    func = funcs[0]
    BodyChecker(_check_function(func)).check(func)
    return func


def _check_function(func: ast.FunctionDef) -> set[str]:
    """Decorators, parameter names and the signature; returns the function's local names."""
    check_identifier(func.name, func)
    if func.decorator_list:
        raise StaticRuleError(RejectionCode.FORBIDDEN_SYNTAX, func, "decorators are not allowed")
    args = func.args
    # Defaults bind to the last positional parameters (positional-only ones included).
    all_positional = [*args.posonlyargs, *args.args]
    defaulted = {id(a) for a in all_positional[len(all_positional) - len(args.defaults) :]}
    if not args.defaults:
        defaulted = set()
    params = [Parameter(nfkc(a.arg), True, id(a) in defaulted) for a in args.args]
    extra = [*args.posonlyargs, *args.kwonlyargs]
    extra += [a for a in (args.vararg, args.kwarg) if a is not None]
    params += [Parameter(nfkc(a.arg), False, False) for a in extra]
    for a in [*args.posonlyargs, *args.args, *args.kwonlyargs]:
        check_identifier(a.arg, a)
    problem = signature_problem(params)
    if problem is not None:
        raise StaticRuleError(RejectionCode.SIGNATURE, func, problem)
    local_names = {p.name for p in params}
    for node in ast.walk(func):  # iterative
        if isinstance(node, ast.Assign):
            for target in node.targets:
                local_names.update(nfkc(n.id) for n in ast.walk(target) if isinstance(n, ast.Name))
    return local_names
