"""Wire formats between the parent, the zygote and the children. All JSON; never pickle.

- Control channel, parent <-> zygote: an AF_UNIX SOCK_SEQPACKET socket pair. One JSON object per
  packet; a packet may carry file descriptors (SCM_RIGHTS). Parent -> zygote: {"op": "spawn"},
  {"op": "kill", "pid": n}, {"op": "shutdown"}. Zygote -> parent: {"op": "ready", ...},
  {"op": "spawned", "pid": n} with the fds [job_w, result_r, output_r], {"op": "exit", "pid": n,
  "code": c, "signal": s}, {"op": "log", "level": ..., "message": ...}.
- Job, parent -> child: JSON bytes on the child's job pipe (fd JOB_FD), then EOF.
- Result, child -> parent: one JSON object on the result pipe (fd RESULT_FD), then EOF. The parent
  decodes it with `decode_result`, which trusts nothing: a child may be fully compromised.

This module moves and checks bytes; it does not decide verdicts.
"""

from __future__ import annotations

import array
import json
import socket
from dataclasses import dataclass
from typing import Any

from sandbox.config import GraphLimits
from sandbox.errors import RejectionError
from sandbox.verdict import RejectionCode, Stage

RESULT_FD = 3  # the child's result pipe; an attacker may know it, the parent trusts no content
JOB_FD = 4
MAX_PACKET = 64 * 1024
MAX_FDS = 8
MAX_REASON_CHARS = 300
CHILD_STAGES = frozenset({Stage.PARSE, Stage.ISOLATION, Stage.BATTERY, Stage.GRAPH})


def send(
    sock: socket.socket,
    message: dict[str, Any],
    fds: tuple[int, ...] | list[int] = (),
) -> None:
    data = json.dumps(message).encode()
    if fds:
        sock.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))])
    else:
        sock.sendall(data)


def recv(sock: socket.socket) -> tuple[dict[str, Any], list[int]] | None:
    """One packet and the fds it carried; None at EOF."""
    data, ancdata, _flags, _addr = sock.recvmsg(
        MAX_PACKET, socket.CMSG_SPACE(MAX_FDS * array.array("i").itemsize)
    )
    fds: list[int] = []
    for level, kind, payload in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            arr = array.array("i")
            arr.frombytes(payload[: len(payload) - (len(payload) % arr.itemsize)])
            fds.extend(arr)
    if not data:
        return None
    return json.loads(data), fds


@dataclass(frozen=True)
class Job:
    source: str
    limits: GraphLimits


def encode_job(source: str, limits: GraphLimits) -> bytes:
    return json.dumps({"source": source, "limits": vars(limits)}).encode()


def decode_job(data: bytes) -> Job:
    raw = json.loads(data)
    return Job(source=raw["source"], limits=GraphLimits(**raw["limits"]))


@dataclass(frozen=True)
class ChildReport:
    """A decoded child result: a failure (stage/code/reason) or the captured graph and values."""

    ok: bool
    stage: Stage | None = None
    code: RejectionCode | None = None
    reason: str = ""
    inputs: tuple[str, ...] = ()
    graph: dict[str, Any] | None = None
    values: tuple[tuple[float, ...], ...] = ()


def clean_text(text: str) -> str:
    """A reason from an untrusted source: printable, one line, bounded."""
    printable = "".join(c if c.isprintable() else " " for c in text)
    return " ".join(printable.split())[:MAX_REASON_CHARS]


def _bad(reason: str) -> RejectionError:
    return RejectionError(
        Stage.ISOLATION,
        RejectionCode.BAD_REPORT,
        f"the sandboxed run returned a malformed result ({reason})",
    )


def _floats(row: object) -> tuple[float, ...]:
    if not isinstance(row, list) or len(row) > 4096:
        raise _bad("probe values must be lists")
    out = []
    for value in row:
        if isinstance(value, bool) or not isinstance(value, int | float | dict):
            raise _bad("probe values must be numbers")
        if isinstance(value, dict):
            if value not in ({"float": "nan"}, {"float": "inf"}, {"float": "-inf"}):
                raise _bad("unknown encoded number")
            out.append(float(value["float"]))
        else:
            out.append(float(value))
    return tuple(out)


def decode_result(data: bytes) -> ChildReport:
    """Validate a child's result bytes; raise `RejectionError` (ISOLATION/BAD_REPORT) if bad."""
    try:
        raw = json.loads(data)
    except (ValueError, RecursionError):
        raise _bad("not JSON") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("ok"), bool):
        raise _bad("no ok field")
    if not raw["ok"]:
        try:
            stage, code = Stage(raw.get("stage")), RejectionCode(raw.get("code"))
        except ValueError:
            raise _bad("unknown stage or code") from None
        if stage not in CHILD_STAGES or not isinstance(raw.get("reason"), str):
            raise _bad("a failure needs a child stage and a reason")
        return ChildReport(False, stage, code, clean_text(raw["reason"]) or "no reason given")
    inputs, graph, values = raw.get("inputs"), raw.get("graph"), raw.get("values")
    if not isinstance(inputs, list) or not all(isinstance(n, str) for n in inputs):
        raise _bad("inputs must be a list of names")
    if not isinstance(graph, dict) or not isinstance(values, list):
        raise _bad("graph must be an object and values a list")
    return ChildReport(
        True, inputs=tuple(inputs), graph=graph, values=tuple(_floats(row) for row in values)
    )
