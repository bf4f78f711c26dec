"""Hosts without one hardening step: a warning is logged and the other layers still hold.

Each pool switches one step off through SandboxConfig, as a host without it would (no seccomp,
no network namespaces, no root for chroot and uid nobody). The attacks run with the static layer
off; what stops them may change (ENOENT from the chroot instead of EPERM from seccomp), but they
must still be rejected at the isolation stage and leave nothing behind.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator

import pytest

from sandbox import Candidate, RejectionCode, Sandbox, Stage
from tests.sandbox.conftest import Listener, make_config
from tests.sandbox.sources import DPO, MARKER, SECRET, attacks

STEPS = ("seccomp", "network_namespace", "drop_privileges")
FORBIDDEN = (Stage.ISOLATION, RejectionCode.FORBIDDEN_OPERATION)


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture(scope="module", params=STEPS, ids=[f"no-{s}" for s in STEPS])
def degraded(request: pytest.FixtureRequest) -> Iterator[tuple[str, Sandbox, list[str]]]:
    step = request.param
    records = _Records()
    logger = logging.getLogger("sandbox.isolation")
    logger.addHandler(records)
    sandbox = Sandbox(make_config(static_checks=False, pool_size=1, **{step: False}))
    try:
        sandbox.start()
    finally:
        logger.removeHandler(records)
    yield step, sandbox, records.messages
    sandbox.close()


def test_missing_step_is_logged_not_silent(degraded: tuple[str, Sandbox, list[str]]) -> None:
    step, sandbox, messages = degraded
    assert sandbox.pool.features[step] == "switched off in SandboxConfig"
    assert [m for m in messages if step in m and "unavailable" in m]


def test_other_layers_still_stop_every_attack(
    degraded: tuple[str, Sandbox, list[str]], listener: Listener
) -> None:
    _, sandbox, _ = degraded
    for attack in attacks(listener.port):
        if not attack.degraded:
            continue
        verdict = sandbox.validate(Candidate(attack.name, "", attack.source))
        assert not verdict.accepted, attack.name
        if attack.off == FORBIDDEN:
            assert (verdict.stage, verdict.code) == FORBIDDEN, (attack.name, verdict.reason)
        else:
            assert (verdict.stage, verdict.code) == attack.off, (attack.name, verdict.reason)
        assert SECRET not in verdict.reason and "root:x:0:0" not in verdict.reason
    assert not os.path.exists(MARKER)
    assert listener.connections == []
    assert sandbox.validate(Candidate("dpo", "", DPO)).accepted
