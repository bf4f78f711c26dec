"""Layer 1 (static.py): what it accepts, what it rejects and why, and that it never crashes."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evaluator.baselines import BASELINES
from sandbox import RejectionCode, Stage, static
from tests.sandbox.sources import DELTA, DPO, PARAMS, loss_source

C = RejectionCode
MAX = 16_384


def _check(source: str) -> static.StaticReport:
    return static.check(source, max_bytes=MAX)


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_every_baseline_passes(name: str) -> None:
    report = _check(BASELINES[name].source)
    assert report.ok, report.reason


def test_report_carries_function_and_canonical_code() -> None:
    report = _check("import torch\n# comment\n" + DPO)
    assert report.function_name == "loss"
    assert report.parameters == tuple(PARAMS.split(", "))
    assert report.canonical_code is not None and "# comment" not in report.canonical_code


ACCEPTED = [
    loss_source(
        '"""Docstring."""',
        "import torch.nn.functional as F",
        f"return -F.logsigmoid(beta * {DELTA})",
    ),
    loss_source(
        f"z = beta * {DELTA}",
        "a, b = z, z * 2",
        "return torch.where(z > 0, a, b) + abs(z) * math.pi",
    ),
    loss_source(
        f"z = beta * {DELTA}",
        "return F.binary_cross_entropy_with_logits(z, torch.ones_like(z), reduction='none')",
    ),
    loss_source(f"z = beta * {DELTA}", "return torch.nn.functional.softplus(-z)"),
    loss_source(f"z = beta * {DELTA}", "return torch.special.expit(-z) + z.shape[0] * 0"),
    "def loss(policy_chosen_logps: torch.Tensor, policy_rejected_logps: torch.Tensor, "
    "ref_chosen_logps: torch.Tensor, ref_rejected_logps: torch.Tensor, beta: float) -> "
    f"torch.Tensor:\n    return -F.logsigmoid(beta * {DELTA})\n",
]


@pytest.mark.parametrize("source", ACCEPTED)
def test_accepted_forms(source: str) -> None:
    report = _check(source)
    assert report.ok, report.reason


REJECTED = [
    ("import os\n" + DPO, C.FORBIDDEN_IMPORT, "import os"),
    ("from os import path\n" + DPO, C.FORBIDDEN_IMPORT, "from os"),
    ("import torch as T\n" + DPO, C.FORBIDDEN_IMPORT, "import torch"),
    (loss_source("return ｅｖａｌ('beta')"), C.UNSAFE_TEXT, "U+FF45 FULLWIDTH LATIN SMALL"),
    (loss_source("return __import__('os')"), C.DUNDER, "__import__"),
    (loss_source("return beta.__class__"), C.DUNDER, "__class__"),
    (loss_source("x = globals()", "return beta"), C.FORBIDDEN_NAME, "globals"),
    (loss_source("return torch"), C.FORBIDDEN_NAME, "torch may only"),
    (loss_source("f = torch.exp", "return f(beta)"), C.FORBIDDEN_NAME, "calling 'f'"),
    (loss_source("torch.exp = torch.sigmoid", "return beta"), C.MUTATION, "attribute"),
    (loss_source("beta[0] = 1", "return beta"), C.MUTATION, "item assignment"),
    (loss_source("beta += 1", "return beta"), C.MUTATION, "augmented"),
    (loss_source("return beta.add_(1)"), C.MUTATION, ".add_()"),
    (loss_source("return torch.exp(beta, out=beta)"), C.MUTATION, "out="),
    (loss_source("return F.relu(beta, inplace=True)"), C.MUTATION, "inplace="),
    (loss_source("torch = 1", "return beta"), C.MUTATION, "shadows"),
    (loss_source("while True:", "    pass"), C.FORBIDDEN_SYNTAX, "loops"),
    (loss_source("for i in beta:", "    pass"), C.FORBIDDEN_SYNTAX, "loops"),
    (
        loss_source("if beta > 0:", "    return beta", "return beta"),
        C.FORBIDDEN_SYNTAX,
        "torch.where",
    ),
    (loss_source("return beta if beta > 0 else -beta"), C.FORBIDDEN_SYNTAX, "torch.where"),
    (loss_source("return (lambda: beta)()"), C.FORBIDDEN_SYNTAX, "call torch"),
    (loss_source("x = lambda: beta", "return beta"), C.FORBIDDEN_SYNTAX, "lambda"),
    (loss_source("return sum([b for b in beta])"), C.FORBIDDEN_NAME, "calling 'sum'"),
    (loss_source("x = [b for b in beta]", "return beta"), C.FORBIDDEN_SYNTAX, "comprehension"),
    (loss_source("x = f'{beta}'", "return beta"), C.FORBIDDEN_SYNTAX, "f-strings"),
    (loss_source("x = 'cuda'", "return beta"), C.FORBIDDEN_CONSTANT, "'cuda'"),
    (loss_source("x = b'x'", "return beta"), C.FORBIDDEN_CONSTANT, "bytes"),
    (loss_source("x = 10 ** 10 + 99999999999", "return beta"), C.FORBIDDEN_CONSTANT, "large"),
    (
        loss_source("try:", "    pass", "except Exception:", "    pass", "return beta"),
        C.FORBIDDEN_SYNTAX,
        "try",
    ),
    (loss_source("global torch", "return beta"), C.FORBIDDEN_SYNTAX, "global"),
    (loss_source("def inner():", "    return beta", "return beta"), C.FORBIDDEN_SYNTAX, "nested"),
    (loss_source("return beta and beta"), C.FORBIDDEN_SYNTAX, "& and |"),
    (loss_source("return not beta"), C.FORBIDDEN_SYNTAX, "logical_not"),
    (loss_source("return 0 < beta < 1"), C.FORBIDDEN_SYNTAX, "chained"),
    (loss_source("return beta is None"), C.FORBIDDEN_SYNTAX, "comparison"),
    (loss_source("return beta.item()"), C.FORBIDDEN_ATTRIBUTE, ".item"),
    (loss_source("return beta.cuda()"), C.FORBIDDEN_ATTRIBUTE, ".cuda"),
    (loss_source("return torch.rand(3)"), C.FORBIDDEN_ATTRIBUTE, "torch.rand"),
    (loss_source("return F.dropout(beta)"), C.FORBIDDEN_ATTRIBUTE, "F.dropout"),
    (loss_source("return torch.os.system('x')"), C.FORBIDDEN_ATTRIBUTE, "torch.os.system"),
    (loss_source("return torch.set_grad_enabled(False)"), C.FORBIDDEN_ATTRIBUTE, "set_grad"),
    (loss_source("return beta.__dict__"), C.DUNDER, "__dict__"),
    (loss_source("return F.relu(beta, **{})"), C.FORBIDDEN_SYNTAX, "**kwargs"),
    (loss_source("return torch.stack([*beta])"), C.FORBIDDEN_SYNTAX, "star"),
    (loss_source("return beta", params="a, b"), C.SIGNATURE, "unknown parameter 'a'"),
    (loss_source("return beta", params=PARAMS + "=0.1"), C.SIGNATURE, "default"),
    (loss_source("return beta", params=PARAMS + ", *rest"), C.SIGNATURE, "plain parameter"),
    (DPO + "\n" + DPO.replace("def loss", "def loss2"), C.STRUCTURE, "2 functions"),
    ("x = 1\n", C.STRUCTURE, "no function"),
    ("x = 1\n" + DPO, C.STRUCTURE, "top-level Assign"),
    ("@torch.no_grad()\n" + DPO, C.FORBIDDEN_SYNTAX, "decorators"),
    ("async " + DPO, C.STRUCTURE, "no function"),
    ("class A:\n    pass\n" + DPO, C.STRUCTURE, "top-level ClassDef"),
    (DPO.replace("beta):", "beta) -> str:"), C.FORBIDDEN_SYNTAX, "annotations"),
]


@pytest.mark.parametrize(("source", "code", "fragment"), REJECTED)
def test_rejections_are_specific(source: str, code: RejectionCode, fragment: str) -> None:
    report = _check(source)
    assert not report.ok
    assert (report.stage, report.code) == (Stage.STATIC, code), report.reason
    assert fragment in report.reason


def test_fullwidth_names_are_refused_before_nfkc_could_fold_them() -> None:
    report = _check(loss_source("return ｏｐｅｎ('/etc/passwd')"))  # Python runs it as `open`
    assert report.code is C.UNSAFE_TEXT and "names must be ASCII" in report.reason


def test_size_cap_and_parse_errors() -> None:
    big = _check(DPO + "#" * MAX)
    assert (big.stage, big.code) == (Stage.STATIC, C.SOURCE_TOO_LARGE)
    broken = _check("def loss(:\n")
    assert (broken.stage, broken.code) == (Stage.PARSE, C.SYNTAX_ERROR)
    assert "line 1" in broken.reason
    deep = static.check(loss_source("return " + "-" * 20_000 + "beta"), max_bytes=10**6)
    assert (deep.stage, deep.code) == (Stage.PARSE, C.SYNTAX_ERROR)
    null = _check(DPO + "\x00")  # refused by the text rules, before the parser sees it
    assert (null.stage, null.code) == (Stage.STATIC, C.UNSAFE_TEXT)


# --- property tests: random mutations of valid losses never crash the validator -------------

TOKENS = [
    "eval",
    "ｅｖａｌ",
    "__import__",
    "os",
    "open",
    "torch",
    "F",
    "math",
    "beta",
    "__class__",
    "print",
    "exec",
    "globals",
    "import",
    "while",
    "lambda",
    "yield",
    "for",
    "if",
    "else",
    "def",
    "return",
    "(",
    ")",
    "[",
    "]",
    ":",
    ",",
    ".",
    "=",
    "+=",
    "**",
    "@",
    "*",
    "\n",
    "\n    ",
    "'",
    '"',
    "{",
    "}",
    "\\",
    "\x00",
    "#",
    "...",
    "1e999",
    "10**99",
    "async",
    "x[0] = 1",
    ".mul_(2)",
    "'{0.__class__}'.format(beta)",
    "torch.sigmoid = None",
    "import subprocess",
    "global x",
    "del beta",
    "not ",
    " and ",
    " is ",
]
SEEDS = [b.source for b in BASELINES.values()] + [DPO]


@st.composite
def mutated_sources(draw: st.DrawFn) -> str:
    source = draw(st.sampled_from(SEEDS))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["insert", "delete", "replace", "duplicate_line", "swap"]))
        at = draw(st.integers(0, len(source)))
        if kind == "insert":
            source = source[:at] + draw(st.sampled_from(TOKENS)) + source[at:]
        elif kind == "delete":
            source = source[:at] + source[at + draw(st.integers(1, 20)) :]
        elif kind == "replace":
            token = draw(st.sampled_from(TOKENS))
            source = source[:at] + token + source[at + len(token) :]
        else:
            lines = source.split("\n")
            i, j = draw(st.integers(0, len(lines) - 1)), draw(st.integers(0, len(lines) - 1))
            if kind == "duplicate_line":
                lines.insert(j, lines[i])
            else:
                lines[i], lines[j] = lines[j], lines[i]
            source = "\n".join(lines)
    return source


def _assert_well_formed(report: static.StaticReport) -> None:
    if report.ok:
        assert report.stage is None and report.code is None and report.function_name
    else:
        assert report.stage in (Stage.PARSE, Stage.STATIC)
        assert isinstance(report.code, RejectionCode)
        assert report.reason.strip() and "\n" not in report.reason


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_sources())
def test_mutations_of_valid_losses_never_crash_the_static_layer(source: str) -> None:
    _assert_well_formed(_check(source))


@settings(max_examples=50, deadline=None)
@given(st.text(max_size=300))
def test_arbitrary_text_never_crashes_the_static_layer(source: str) -> None:
    _assert_well_formed(_check(source))


# --- an in-place flag passed by position is refused like inplace=True -------------------------

POSITIONAL_FLAGS = [
    ("F.leaky_relu(z, 0.1, True)", "argument 3"),
    ("torch.nn.functional.relu(z, True)", "argument 2"),
    ("F.hardtanh(z, -1.0, 1.0, 1)", "argument 4"),
    ("F.elu(z, 1.0, z.sum() > 0)", "argument 3"),
]


@pytest.mark.parametrize(("call", "fragment"), POSITIONAL_FLAGS)
def test_an_inplace_flag_passed_by_position_is_refused(call: str, fragment: str) -> None:
    report = _check(loss_source(f"z = beta * {DELTA}", f"return {call}"))
    assert report.code is C.MUTATION, report.reason
    assert fragment in report.reason and "inplace" in report.reason


@pytest.mark.parametrize(
    "call", ["F.leaky_relu(z, 0.2)", "F.leaky_relu(z, 0.2, False)", "F.hardtanh(z, -2.0, 2.0)"]
)
def test_positional_arguments_that_are_not_flags_pass(call: str) -> None:
    report = _check(loss_source(f"z = beta * {DELTA}", f"return {call}"))
    assert report.ok, report.reason
