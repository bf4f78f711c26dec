"""seccomp_filter.py: what a process can and cannot do once the filter is loaded.

Each case forks a child of the test process, loads the filter there and reports back; the test
process itself is never filtered.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import threading

import torch

from sandbox import seccomp_filter


def _in_filtered_child(action: str) -> str:
    """Run `action` in a forked child under the filter; return 'ok', an errno name or a signal."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        outcome = "ok"
        try:
            seccomp_filter.install(os.getpid())
            ACTIONS[action]()
        except OSError as exc:
            outcome = f"errno:{exc.errno}"
        except BaseException as exc:  # report anything else by name
            outcome = type(exc).__name__
        os.write(write_end, outcome.encode())
        os._exit(0)
    os.close(write_end)
    outcome = os.read(read_end, 100).decode()
    os.close(read_end)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        return f"signal:{os.WTERMSIG(status)}"
    return outcome


def _fork() -> None:
    if os.fork() == 0:
        os._exit(0)


def _thread() -> None:
    worker = threading.Thread(target=lambda: None)
    worker.start()
    worker.join()


ACTIONS = {
    "fork": _fork,
    "exec": lambda: os.execv("/bin/true", ["true"]),
    "socket": socket.socket,
    "unix socket": lambda: socket.socket(socket.AF_UNIX),
    "read file": lambda: open("/etc/hostname").read(),  # noqa: SIM115
    "write file": lambda: open("/tmp/lossforge-seccomp-test", "w"),  # noqa: SIM115
    "kill parent": lambda: os.kill(os.getppid(), 0),
    "setrlimit": lambda: (
        ctypes.CDLL(None, use_errno=True).setrlimit(7, b"\0" * 16) == 0 or (_raise_errno())
    ),
    "ptrace": lambda: (
        ctypes.CDLL(None, use_errno=True).ptrace(16, os.getppid(), 0, 0) == 0 or (_raise_errno())
    ),
    "x32 syscall": lambda: ctypes.CDLL(None).syscall(0x40000000 | 39),
    "kill self": lambda: os.kill(os.getpid(), 0),
    "thread": _thread,
    "torch": lambda: (torch.set_num_threads(1), torch.randn(4).exp()),
    "pipe": lambda: [os.close(fd) for fd in os.pipe()],
}


def _raise_errno() -> None:
    err = ctypes.get_errno()
    raise OSError(err, os.strerror(err))


def test_denied_operations_fail_with_eperm() -> None:
    for action in (
        "fork",
        "exec",
        "socket",
        "unix socket",
        "read file",
        "write file",
        "kill parent",
        "setrlimit",
        "ptrace",
    ):
        assert _in_filtered_child(action) == "errno:1", action
    assert not os.path.exists("/tmp/lossforge-seccomp-test")


def test_foreign_abi_syscalls_kill_the_process() -> None:
    assert _in_filtered_child("x32 syscall") == f"signal:{int(signal.SIGSYS)}"


def test_computation_stays_possible() -> None:
    for action in ("kill self", "thread", "torch", "pipe"):
        assert _in_filtered_child(action) == "ok", action
