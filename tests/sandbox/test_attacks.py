"""One adversarial candidate per sandbox property, each run twice: static layer off, all layers on.

With the static layer off, the lower layers (isolation, battery, graph rebuild) must stop the
attack on their own; with every layer on, the expected stage is usually STATIC. Each test asserts
the exact stage and code, that nothing leaked into the reason, and that nothing happened on the
host (no marker file, no connection to the test's listener, the pool still works).
"""

from __future__ import annotations

import os

import pytest

from sandbox import Candidate, RejectionCode, Sandbox, Stage, VerdictStatus
from tests.sandbox.conftest import Listener
from tests.sandbox.sources import DPO, MARKER, SECRET, Attack, attacks

ATTACK_NAMES = [a.name for a in attacks(0, honest="{}")]


def _attack(name: str, port: int) -> Attack:
    return next(a for a in attacks(port) if a.name == name)


@pytest.fixture(autouse=True)
def _no_marker() -> None:
    if os.path.exists(MARKER):
        os.remove(MARKER)


@pytest.mark.parametrize("static_on", [False, True], ids=["static-off", "all-layers"])
@pytest.mark.parametrize("name", ATTACK_NAMES)
def test_attack_is_rejected(
    name: str, static_on: bool, sandboxes: dict[tuple[bool, bool], Sandbox], listener: Listener
) -> None:
    attack = _attack(name, listener.port)
    sandbox = sandboxes[(static_on, attack.needs_short_timeout)]
    verdict = sandbox.validate(Candidate(name, "", attack.source))

    expected_stage, expected_code = attack.on if static_on else attack.off
    assert verdict.status is VerdictStatus.REJECTED
    assert (verdict.stage, verdict.code) == (expected_stage, expected_code), verdict.reason
    assert verdict.reason and "\n" not in verdict.reason
    assert verdict.graph_json is None and verdict.fingerprint is None
    # Nothing leaked and nothing happened on the host.
    assert SECRET not in verdict.reason
    assert "root:x:0:0" not in verdict.reason
    assert not os.path.exists(MARKER)
    assert listener.connections == []


def test_environment_seen_by_a_child_is_empty(sandbox_no_static: Sandbox) -> None:
    verdict = sandbox_no_static.validate(Candidate("env", "", _attack("environment", 0).source))
    assert verdict.code is RejectionCode.EXCEPTION
    assert "ENV={}" in verdict.reason  # the child's os.environ is empty, so no API key


def test_format_string_escape_reaches_only_an_empty_environment(sandbox_no_static: Sandbox) -> None:
    verdict = sandbox_no_static.validate(
        Candidate("fmt", "", _attack("format_string_escape", 0).source)
    )
    assert "LEAK=environ({})" in verdict.reason
    assert SECRET not in verdict.reason


def test_forbidden_operations_name_the_blocked_call(sandbox_no_static: Sandbox) -> None:
    verdict = sandbox_no_static.validate(Candidate("p", "", _attack("read_passwd", 0).source))
    assert "/etc/passwd" in verdict.reason
    if sandbox_no_static.pool.features["seccomp"] is None:
        assert "Operation not permitted" in verdict.reason  # seccomp answered before chroot


def test_memory_bomb_is_stopped_by_the_rlimit_even_with_all_layers_on(sandbox: Sandbox) -> None:
    verdict = sandbox.validate(Candidate("m", "", _attack("tensor_memory_bomb", 0).source))
    assert (verdict.stage, verdict.code) == (Stage.ISOLATION, RejectionCode.MEMORY)
    assert "memory" in verdict.reason


def test_monkeypatching_does_not_reach_the_next_candidate(
    sandbox: Sandbox, sandbox_no_static: Sandbox
) -> None:
    before = sandbox.validate(Candidate("dpo", "", DPO))
    patched = sandbox_no_static.validate(
        Candidate("patch", "", _attack("monkeypatch_torch", 0).source)
    )
    after = sandbox.validate(Candidate("dpo", "", DPO))
    assert patched.code is RejectionCode.MONKEYPATCH
    assert before.accepted and after.accepted
    assert before.fingerprint == after.fingerprint


def test_pool_survives_every_attack(sandbox: Sandbox, sandbox_no_static: Sandbox) -> None:
    for name in ("kill_zygote", "fork", "x32_syscall", "output_flood", "result_flood"):
        sandbox_no_static.validate(Candidate(name, "", _attack(name, 0).source))
    assert sandbox.pool.alive
    assert sandbox.validate(Candidate("dpo", "", DPO)).accepted
