"""Layer 2, parent side: a pool of pre-forked, pre-hardened workers, one candidate per worker.

Threat model. Candidate code is written by a proposer we do not trust: an LLM that can be
prompt-injected, or a careless one. We assume the code is adversarial Python with full access to
everything a Python process can reach (the static layer may be bypassed; tests switch it off), and
that it wants to: read secrets (the parent's environment and API keys, files, other processes'
memory), reach the network, write files, run programs, fork, hang or exhaust CPU, memory or
output, tamper with torch or the sandbox to get a bad loss accepted, or escape the sandbox
through the kernel. We defend, in depth:

- no secrets to steal: the zygote is exec'd fresh with a minimal environment, so neither it nor
  any worker forked from it ever held the parent's environment; each worker clears its own;
- confinement (hardening.py): own session, empty network namespace, chroot into an empty
  directory, uid/gid nobody without capabilities, not dumpable, rlimits (CPU, address space,
  file size 0, open files, no core, no processes) and a seccomp filter (seccomp_filter.py). Steps
  the host does not allow (seccomp, namespaces and chroot need root or kernel support) are
  skipped with a logged warning naming what is lost, never silently;
- limits enforced from outside: a wall-clock deadline after which the zygote SIGKILLs the worker's
  whole process group, and byte budgets on what the worker prints and on its result, both read as
  streams (a flood is cut off at the budget, not buffered);
- nothing the worker says is believed: its result is parsed defensively (protocol.py) and the
  parent rebuilds the graph against its own allow-list, re-runs it and fingerprints it itself.

Out of scope: kernel exploits through the syscalls the filter still allows (CPU-bound Python and
torch need memory management, futexes and pipes), and side channels such as timing.

This module runs no candidate code and decides no verdict; it returns a `ChildOutcome`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path

from sandbox import protocol
from sandbox.config import SandboxConfig
from sandbox.errors import SandboxUnavailableError
from sandbox.hardening import HardeningPlan

logger = logging.getLogger(__name__)

_FEATURE_LOSS = {
    "seccomp": "no syscall filter: exec, fork, sockets and file access are stopped only by the "
    "chroot, uid nobody and rlimits",
    "network_namespace": "children share the host network namespace: sockets are stopped only "
    "by seccomp",
    "drop_privileges": "no chroot and no uid drop: children see the host file system with the "
    "parent's uid; file access is stopped only by seccomp",
}
_EXIT_WAIT_S = 5.0
_OUTPUT_TAIL = 2048


class Outcome(StrEnum):
    FINISHED = "finished"  # the worker closed its pipes; see result bytes and exit
    TIMEOUT = "timeout"
    OUTPUT_FLOOD = "output_flood"
    RESULT_TOO_LARGE = "result_too_large"


@dataclass
class ChildOutcome:
    """What the parent observed of one worker run (all of it untrusted data)."""

    outcome: Outcome
    result: bytes = b""
    output_tail: bytes = b""  # the last bytes the worker printed
    exit_code: int | None = None
    exit_signal: int | None = None
    elapsed_s: float = 0.0


@dataclass
class _Worker:
    pid: int
    job_w: int
    result_r: int
    output_r: int


@dataclass
class _Exits:
    """Exit notices from the zygote, keyed by pid; waited on with a condition."""

    done: dict[int, tuple[int | None, int | None]] = field(default_factory=dict)
    cond: threading.Condition = field(default_factory=threading.Condition)


class WorkerPool:
    """Starts the zygote and hands out ready workers; `run` may be called from many threads."""

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.features: dict[str, str | None] = {}  # hardening step -> None, or why it is missing
        self.cold_start_s: float | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._sock: socket.socket | None = None
        self._send_lock = threading.Lock()
        self._ready: queue.Queue[_Worker] = queue.Queue()
        self._exits = _Exits()
        self._reader: threading.Thread | None = None
        self._alive = False

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> None:
        if self._alive:
            return
        if self._process is not None:  # a dead zygote from an earlier start: clean up first
            self.close()
        begin = time.monotonic()
        parent_sock, child_sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        cfg = self.config
        plan = HardeningPlan(
            cpu_seconds=cfg.cpu_seconds,
            memory_bytes=cfg.memory_bytes,
            max_open_files=cfg.max_open_files,
            seccomp=cfg.seccomp,
            network_namespace=cfg.network_namespace,
            drop_privileges=cfg.drop_privileges,
        )
        root = str(Path(__file__).resolve().parent.parent)
        code = (
            "import sys; sys.path.insert(0, sys.argv.pop(1)); "
            "from sandbox.zygote import main; main()"
        )
        env = {
            "PATH": "/usr/bin:/bin",
            "LC_ALL": "C.UTF-8",
            "OMP_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1",
            "OPENBLAS_NUM_THREADS": "1",
        }
        self._process = subprocess.Popen(
            [
                sys.executable,
                "-I",
                "-c",
                code,
                root,
                str(child_sock.fileno()),
                json.dumps(asdict(plan)),
            ],
            pass_fds=(child_sock.fileno(),),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        child_sock.close()
        self._sock = parent_sock
        threading.Thread(
            target=self._drain_stderr,
            args=(self._process,),
            daemon=True,
            name="lossforge-zygote-stderr",
        ).start()
        parent_sock.settimeout(cfg.start_timeout_s)
        try:
            received = protocol.recv(parent_sock)
        except (TimeoutError, OSError) as exc:
            self.close()
            raise SandboxUnavailableError(f"the sandbox zygote did not start: {exc}") from exc
        if received is None or received[0].get("op") != "ready":
            reason = received[0].get("reason") if received else "it exited"
            self.close()
            raise SandboxUnavailableError(f"the sandbox zygote failed to start: {reason}")
        parent_sock.settimeout(None)
        self.features = dict(received[0]["features"])
        for step, missing in self.features.items():
            if missing is not None:
                logger.warning(
                    "sandbox: %s unavailable (%s); %s", step, missing, _FEATURE_LOSS[step]
                )
        self._alive = True
        self._reader = threading.Thread(
            target=self._read_control, daemon=True, name="lossforge-sandbox-control"
        )
        self._reader.start()
        for _ in range(cfg.pool_size):
            self._send({"op": "spawn"})
        self._ready.put(self._take())  # block until a warm worker exists: cold start includes it
        self.cold_start_s = time.monotonic() - begin

    def close(self) -> None:
        self._alive = False
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._send({"op": "shutdown"})
        if self._process is not None:
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self._process.pid, signal.SIGKILL)
                self._process.wait()
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        while not self._ready.empty():
            self._close_worker(self._ready.get_nowait())
        self._process = None

    @property
    def alive(self) -> bool:
        return self._alive

    # -- control channel -----------------------------------------------------------------------
    def _send(self, message: dict[str, object]) -> None:
        with self._send_lock:
            if self._sock is None:
                raise SandboxUnavailableError("the sandbox pool is not running")
            protocol.send(self._sock, message)

    def _read_control(self) -> None:
        sock = self._sock
        assert sock is not None
        while True:
            try:
                received = protocol.recv(sock)
            except (OSError, ValueError):
                received = None
            if received is None:
                break
            message, fds = received
            op = message.get("op")
            if op == "spawned" and len(fds) == 3:
                self._ready.put(_Worker(int(message["pid"]), *fds))
            elif op == "exit":
                with self._exits.cond:
                    self._exits.done[int(message["pid"])] = (
                        message.get("code"),
                        message.get("signal"),
                    )
                    self._exits.cond.notify_all()
            else:
                for fd in fds:
                    os.close(fd)
        if self._alive:
            logger.error("sandbox: the zygote exited unexpectedly; restart the sandbox")
        self._alive = False
        with self._exits.cond:
            self._exits.cond.notify_all()

    @staticmethod
    def _drain_stderr(process: subprocess.Popen[bytes]) -> None:
        assert process.stderr is not None
        for line in process.stderr:
            text = line.decode(errors="replace").rstrip()
            if text:
                logger.debug("sandbox zygote: %s", text)

    def _take(self) -> _Worker:
        deadline = time.monotonic() + self.config.start_timeout_s
        while True:
            if not self._alive and self._reader is not None:
                raise SandboxUnavailableError("the sandbox zygote is not running")
            try:
                worker = self._ready.get(timeout=0.5)
            except queue.Empty:
                if time.monotonic() > deadline:
                    raise SandboxUnavailableError(
                        f"no sandbox worker became ready in {self.config.start_timeout_s} s"
                    ) from None
                continue
            with self._exits.cond:
                dead = self._exits.done.pop(worker.pid, None) is not None
            if dead:  # it died while waiting (e.g. failed hardening): never use it
                self._close_worker(worker)
                self._send({"op": "spawn"})
                continue
            return worker

    @staticmethod
    def _close_worker(worker: _Worker) -> None:
        for fd in (worker.job_w, worker.result_r, worker.output_r):
            with contextlib.suppress(OSError):
                os.close(fd)

    # -- running a job -------------------------------------------------------------------------
    def run(self, job: bytes, *, timeout_s: float) -> ChildOutcome:
        """Hand `job` to a fresh worker and observe it until it finishes or breaks a limit."""
        if not self._alive:
            raise SandboxUnavailableError("the sandbox pool is not running; call start()")
        worker = self._take()
        self._send({"op": "spawn"})  # replace it while this one works
        begin = time.monotonic()
        try:
            outcome = self._observe(worker, job, begin + timeout_s)
        finally:
            self._close_worker(worker)
        if outcome.outcome is not Outcome.FINISHED:
            self._send({"op": "kill", "pid": worker.pid})
        exit_info = self._wait_exit(
            worker.pid, _EXIT_WAIT_S if outcome.outcome is not Outcome.FINISHED else 1.0
        )
        if exit_info is None and outcome.outcome is Outcome.FINISHED:
            # The worker closed its pipes but lingers: a forged early report. End it.
            self._send({"op": "kill", "pid": worker.pid})
            exit_info = self._wait_exit(worker.pid, _EXIT_WAIT_S)
        if exit_info is None:
            raise SandboxUnavailableError(f"sandbox worker {worker.pid} could not be killed")
        outcome.exit_code, outcome.exit_signal = exit_info
        outcome.elapsed_s = time.monotonic() - begin
        return outcome

    def _observe(self, worker: _Worker, job: bytes, deadline: float) -> ChildOutcome:
        # < 64 KiB (size cap), so it fits the pipe buffer; if the worker is gone, its exit says why
        with contextlib.suppress(BrokenPipeError):
            os.write(worker.job_w, job)
        os.close(worker.job_w)
        worker.job_w = -1
        result, tail, printed = bytearray(), b"", 0
        with selectors.DefaultSelector() as selector:
            for fd in (worker.result_r, worker.output_r):
                os.set_blocking(fd, False)
                selector.register(fd, selectors.EVENT_READ)
            while selector.get_map():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return ChildOutcome(Outcome.TIMEOUT, bytes(result), tail)
                for key, _ in selector.select(remaining):
                    try:
                        chunk = os.read(key.fd, 65536)
                    except BlockingIOError:
                        continue
                    if not chunk:
                        selector.unregister(key.fd)
                    elif key.fd == worker.result_r:
                        result += chunk
                        if len(result) > self.config.max_result_bytes:
                            return ChildOutcome(Outcome.RESULT_TOO_LARGE, b"", tail)
                    else:
                        printed += len(chunk)
                        tail = (tail + chunk)[-_OUTPUT_TAIL:]
                        if printed > self.config.max_output_bytes:
                            return ChildOutcome(Outcome.OUTPUT_FLOOD, bytes(result), tail)
        return ChildOutcome(Outcome.FINISHED, bytes(result), tail)

    def _wait_exit(self, pid: int, timeout: float) -> tuple[int | None, int | None] | None:
        deadline = time.monotonic() + timeout
        with self._exits.cond:
            while pid not in self._exits.done:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._alive:
                    return self._exits.done.pop(pid, None)
                self._exits.cond.wait(remaining)
            return self._exits.done.pop(pid)
