"""The packages' import rules, read from the source (AST), so a violation fails here and not in
a code review: api -> discovery -> evaluator -> sandbox, each only downwards; `api` reaches
neither `evaluator` nor `sandbox` (the service layer in `discovery` is its way down); `discovery`
reaches the evaluator only through its public interface (`evaluator/__init__.py`), by names the
interface lists. Imports inside functions and under TYPE_CHECKING count too."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import evaluator

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("api", "discovery", "evaluator", "sandbox")
# What each package may import among the others.
ALLOWED = {
    "api": {"api", "discovery"},
    "discovery": {"discovery", "evaluator", "sandbox"},
    "evaluator": {"evaluator", "sandbox"},
    "sandbox": {"sandbox"},
}


def imports(source: str) -> list[tuple[int, str, list[str]]]:
    """(line, module, names) of every import in `source`; `names` empty for `import x`."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module, [a.name for a in node.names]))
    return found


def violations(package: str, path: str, source: str) -> list[str]:
    """Each import of `source` (a module of `package`) that breaks the rules, as a sentence."""
    out = []
    for line, module, names in imports(source):
        top = module.split(".")[0]
        if top not in PACKAGES:
            continue
        where = f"{path}:{line}"
        if top not in ALLOWED[package]:
            out.append(f"{where}: {package} imports {module}")
        elif package == "discovery" and top == "evaluator":
            if module != "evaluator":
                out.append(f"{where}: discovery imports {module}, not the public `evaluator`")
            unknown = sorted(set(names) - set(evaluator.__all__))
            if unknown:
                out.append(f"{where}: {unknown} are not in evaluator's public interface")
    return out


def package_modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("package", PACKAGES)
def test_imports_flow_one_way_down(package: str) -> None:
    found = [
        v
        for path in package_modules(package)
        for v in violations(package, str(path.relative_to(ROOT)), path.read_text())
    ]
    assert not found, "\n".join(found)


def test_the_rules_catch_what_they_forbid() -> None:
    """The checker itself, on sources that break each rule (a rule that matches nothing would
    pass every package above)."""
    bad_api = "def f():\n    from sandbox import Sandbox\nimport evaluator.jobs\n"
    assert len(violations("api", "a.py", bad_api)) == 2
    assert violations("discovery", "d.py", "from evaluator.dispatch import RayDispatcher\n")
    assert violations("discovery", "d.py", "from evaluator import not_a_public_name\n")
    assert not violations("discovery", "d.py", "from evaluator import EvalJob, plan\n")
    assert violations("evaluator", "e.py", "from discovery.spec import CampaignSpec\n")
    assert violations("sandbox", "s.py", "import evaluator\n")


def test_every_public_evaluator_name_resolves() -> None:
    # A name listed but not defined where the list says would fail only when first used.
    for name in evaluator.__all__:
        assert getattr(evaluator, name) is not None, name
