"""The zygote: a warm process that forks hardened, single-use workers on request.

Started by isolation.py with `python -I` and a minimal environment (so no secret of the parent is
ever in its memory or in the memory of anything it forks). It imports torch once with one
thread, runs the whole child pipeline on known-good losses (child.warm_up) so lazy
initialisation is done, probes which hardening steps the host allows, freezes the heap for
copy-on-write, and then serves the parent over a SOCK_SEQPACKET socket:

- "spawn": fork a worker. The worker hardens itself at once (hardening.py) and then blocks on its
  job pipe, so the cost of fork and hardening is paid before a candidate arrives. The zygote
  passes the parent the worker's job, result and output pipe ends (SCM_RIGHTS).
- "kill": SIGKILL the worker's process group. Only the zygote reaps its workers, so it can kill
  a group knowing its id has not been reused.
- worker exits are reported as {"op": "exit", "pid", "code", "signal"}, after the zygote has
  killed the dead worker's process group (any orphan it left) and removed its work directory.
- EOF on the socket (the parent closed it or died) or "shutdown": kill every worker and exit.

The zygote runs no candidate code itself and holds no secret worth stealing; it is single
threaded and never trusts a worker.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import json
import os
import select
import shutil
import signal
import socket
import sys
import tempfile
from dataclasses import replace
from typing import NoReturn

import torch

from sandbox import child, hardening, protocol
from sandbox.config import GraphLimits
from sandbox.hardening import EXIT_HARDENING_FAILED, HardeningPlan
from sandbox.protocol import JOB_FD, RESULT_FD

PR_SET_CHILD_SUBREAPER = 36
MAX_JOB_BYTES = 1 << 20


def _read_job() -> bytes:
    chunks, size = [], 0
    while chunk := os.read(JOB_FD, 65536):
        size += len(chunk)
        if size > MAX_JOB_BYTES:
            raise ValueError("job too large")
        chunks.append(chunk)
    return b"".join(chunks)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _worker(
    plan: HardeningPlan, fds: tuple[int, int, int, int], workdir: str, zygote_pid: int
) -> NoReturn:
    """Body of a forked worker: harden, wait for one job, run it, report, exit."""
    job_r, result_w, output_w, devnull = fds
    try:
        hardening.detach(job_r=job_r, result_w=result_w, output_w=output_w, devnull=devnull)
        hardening.restrict(plan, workdir=workdir, zygote_pid=zygote_pid)
    except BaseException as exc:  # a worker that cannot harden must never run a candidate
        try:  # fd 2 is the output pipe once detach() ran; the parent logs it
            os.write(2, f"hardening failed: {type(exc).__name__}: {exc}".encode()[:500])
        finally:
            os._exit(EXIT_HARDENING_FAILED)
    # Pre-fault: run a known-good job now, while no candidate waits, so the copy-on-write page
    # faults of a fresh fork are paid off the hot path. Failures surface in the real job.
    with contextlib.suppress(Exception):
        child.run_job(protocol.Job(child.WARM_UP_SOURCES[0], GraphLimits()))
    try:
        result = child.run_job(protocol.decode_job(_read_job()))
        payload = json.dumps(result, allow_nan=False).encode()
    except BaseException as exc:  # child boundary: whatever happened becomes a reason
        kind = "ended the process" if not isinstance(exc, Exception) else "broke the sandbox run"
        payload = json.dumps(
            {
                "ok": False,
                "stage": "isolation",
                "code": "crashed",
                "reason": f"{kind} ({type(exc).__name__}: {str(exc)[:200]}); a "
                "loss must return its losses",
            }
        ).encode()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # a closed or flooded stdout must not stop the report
            stream.flush()
    try:
        _write_all(RESULT_FD, payload)
    finally:
        os._exit(0)


class Zygote:
    """The zygote's state and request loop."""

    def __init__(self, sock: socket.socket, plan: HardeningPlan) -> None:
        self.sock = sock
        self.plan = plan
        self.workers: dict[int, str] = {}  # pid -> work directory
        self.devnull = -1
        self.workroot = ""

    def start(self) -> None:
        torch.set_num_threads(1)
        torch.set_num_interop_threads(1)
        child.warm_up()
        self.devnull = os.open(os.devnull, os.O_RDWR)
        self.workroot = tempfile.mkdtemp(prefix="lossforge-sandbox-")
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)  # orphans of workers come back to us
        features = hardening.probe(self.plan, self.devnull, tempfile.mkdtemp(dir=self.workroot))
        self.plan = replace(
            self.plan,
            seccomp=features["seccomp"] is None,
            network_namespace=features["network_namespace"] is None,
            drop_privileges=features["drop_privileges"] is None,
        )
        gc.collect()
        gc.freeze()  # keep the warm heap shared copy-on-write across forks
        protocol.send(self.sock, {"op": "ready", "pid": os.getpid(), "features": features})

    def serve(self) -> None:
        wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        try:
            while True:
                readable, _, _ = select.select([self.sock, wake_r], [], [])
                if wake_r in readable:
                    while True:
                        try:
                            if not os.read(wake_r, 512):
                                break
                        except BlockingIOError:
                            break
                    self.reap()
                if self.sock in readable:
                    received = protocol.recv(self.sock)
                    if received is None or received[0].get("op") == "shutdown":
                        return
                    self.handle(received[0])
        finally:
            self.stop()

    def handle(self, message: dict[str, object]) -> None:
        op = message.get("op")
        if op == "spawn":
            self.spawn()
        elif op == "kill":
            pid = message.get("pid")
            if isinstance(pid, int) and pid in self.workers:
                self._kill_group(pid)

    def spawn(self) -> None:
        job_r, job_w = os.pipe()
        result_r, result_w = os.pipe()
        output_r, output_w = os.pipe()
        workdir = tempfile.mkdtemp(dir=self.workroot)
        pid = os.fork()
        if pid == 0:
            _worker(
                self.plan,
                (job_r, result_w, output_w, self.devnull),
                workdir,
                zygote_pid=os.getppid(),
            )
        for fd in (job_r, result_w, output_w):
            os.close(fd)
        self.workers[pid] = workdir
        try:
            protocol.send(self.sock, {"op": "spawned", "pid": pid}, [job_w, result_r, output_r])
        finally:
            for fd in (job_w, result_r, output_r):
                os.close(fd)

    @staticmethod
    def _kill_group(pid: int) -> None:
        for kill in (os.killpg, os.kill):
            with contextlib.suppress(ProcessLookupError):
                kill(pid, signal.SIGKILL)

    def reap(self) -> None:
        while True:
            try:
                # Peek without reaping: while the zombie exists its pid (= its process group id)
                # cannot be reused, so killing the group cannot hit a stranger.
                info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                return
            if info is None:
                return
            pid = info.si_pid
            if pid in self.workers:
                self._kill_group(pid)
            _, status = os.waitpid(pid, 0)
            workdir = self.workers.pop(pid, None)
            if workdir is None:
                continue  # an orphan reparented to us; nothing to report
            shutil.rmtree(workdir, ignore_errors=True)
            code = os.waitstatus_to_exitcode(status)
            protocol.send(
                self.sock,
                {
                    "op": "exit",
                    "pid": pid,
                    "code": code if code >= 0 else None,
                    "signal": -code if code < 0 else None,
                },
            )

    def stop(self) -> None:
        for pid in list(self.workers):
            self._kill_group(pid)
        for pid in list(self.workers):
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
        if self.workroot:
            shutil.rmtree(self.workroot, ignore_errors=True)


def main() -> None:
    """Entry point: `python -I -c '...main()' CONTROL_FD PLAN_JSON`."""
    fd, plan_json = int(sys.argv[1]), sys.argv[2]
    sock = socket.socket(fileno=fd)
    zygote = Zygote(sock, HardeningPlan(**json.loads(plan_json)))
    try:
        zygote.start()
    except BaseException as exc:  # report why the pool cannot start, then exit
        try:
            protocol.send(sock, {"op": "failed", "reason": f"{type(exc).__name__}: {exc}"[:500]})
        finally:
            raise
    zygote.serve()
