"""protocol.py: the parent decodes child results defensively."""

from __future__ import annotations

import json
import socket

import pytest

from sandbox import RejectionCode, RejectionError, Stage, protocol
from sandbox.config import GraphLimits

C = RejectionCode


def test_job_round_trip() -> None:
    limits = GraphLimits(max_nodes=7)
    job = protocol.decode_job(protocol.encode_job("def loss(): pass", limits))
    assert job.source == "def loss(): pass" and job.limits == limits


def test_control_messages_carry_file_descriptors() -> None:
    left, right = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    with left, right:
        read_end, write_end = __import__("os").pipe()
        protocol.send(left, {"op": "spawned", "pid": 1}, [read_end, write_end])
        received = protocol.recv(right)
        assert received is not None
        message, fds = received
        assert message == {"op": "spawned", "pid": 1} and len(fds) == 2
        left.close()
        assert protocol.recv(right) is None


def test_failure_report_is_cleaned() -> None:
    raw = {
        "ok": False,
        "stage": "battery",
        "code": "exception",
        "reason": "line one\nline two\x1b[31m" + "x" * 1000,
    }
    report = protocol.decode_result(json.dumps(raw).encode())
    assert (report.stage, report.code) == (Stage.BATTERY, C.EXCEPTION)
    assert "\n" not in report.reason and "\x1b" not in report.reason
    assert len(report.reason) <= protocol.MAX_REASON_CHARS


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"{",
        b"[]",
        b'{"ok": "yes"}',
        b'{"ok": false, "stage": "static", "code": "dunder", "reason": "x"}',
        b'{"ok": false, "stage": "battery", "code": "nope", "reason": "x"}',
        b'{"ok": true, "inputs": "x", "graph": {}, "values": []}',
        b'{"ok": true, "inputs": [], "graph": {}, "values": [["1"]]}',
        b'{"ok": true, "inputs": [], "graph": {}, "values": [[{"float": "evil"}]]}',
        b"[" * 100_000,
    ],
)
def test_malformed_results_are_bad_reports(payload: bytes) -> None:
    with pytest.raises(RejectionError) as info:
        protocol.decode_result(payload)
    assert (info.value.stage, info.value.code) == (Stage.ISOLATION, C.BAD_REPORT)
