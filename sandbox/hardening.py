"""Turn a freshly forked worker into a sandbox (runs in the child, before it reads its job).

Steps, in order (`detach`, then `restrict`):
 1. New session and process group, so one killpg ends the child and anything it started.
 2. File descriptors: stdin from /dev/null, stdout and stderr into the output pipe that the parent
    reads against a byte budget, the result pipe at fd 3, the job pipe at fd 4; every other
    descriptor closed (in particular the zygote's control socket, which would let a child speak
    for the zygote).
 3. Environment cleared (the zygote was started with a minimal one already: no API keys).
 4. A private, empty network namespace (root only): no interface but a down loopback.
 5. chdir into an empty temporary directory; as root, chroot into it, so no file of the host is
    reachable by any path.
 6. rlimits, hard = soft so they cannot be raised: CPU seconds, address space (the warm worker's
    size plus a budget), file size 0, open files, core dumps 0, processes 0.
 7. As root: drop to uid/gid nobody with no supplementary groups, which drops every capability;
    then not dumpable (no ptrace or /proc access by other nobody processes) and SIGKILL when the
    zygote dies.
 8. The seccomp filter (seccomp_filter.py).

`probe(plan)` runs the same steps in a throwaway child at zygote start-up and reports which are
available; steps the host does not allow are then skipped, and the parent logs a warning for
each, never silently. In a worker, a step that was available and fails aborts the worker (exit
code EXIT_HARDENING_FAILED) before it ever sees candidate code.

This module does not decide verdicts, time anything out or read output (isolation.py).
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import resource
import signal
from dataclasses import dataclass, replace

from sandbox import seccomp_filter
from sandbox.protocol import JOB_FD, RESULT_FD

EXIT_HARDENING_FAILED = 86
CLONE_NEWNET = 0x40000000
PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
NOBODY = 65534


@dataclass(frozen=True)
class HardeningPlan:
    """Which steps to apply and with what limits (built by the zygote from SandboxConfig)."""

    cpu_seconds: int
    memory_bytes: int  # added to the worker's current address space for RLIMIT_AS
    max_open_files: int
    seccomp: bool
    network_namespace: bool
    drop_privileges: bool  # chroot + uid/gid nobody; only possible as root
    uid: int = NOBODY
    gid: int = NOBODY


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _address_space() -> int:
    with open("/proc/self/statm", "rb") as f:
        return int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")


def _place_fds(job_r: int, result_w: int, output_w: int, devnull: int) -> None:
    # Move everything above the target numbers first so dup2 cannot clobber a source.
    sources = [os.dup(fd) for fd in (job_r, result_w, output_w, devnull)]
    high = [fcntl_dup_high(fd) for fd in sources]
    for fd in sources:
        os.close(fd)
    job, result, output, null = high
    os.dup2(null, 0)
    os.dup2(output, 1)
    os.dup2(output, 2)
    os.dup2(result, RESULT_FD)
    os.dup2(job, JOB_FD)
    os.closerange(JOB_FD + 1, 1 << 20)  # uses close_range(2) where the kernel has it


def fcntl_dup_high(fd: int) -> int:
    return fcntl.fcntl(fd, fcntl.F_DUPFD, 100)


def detach(*, job_r: int, result_w: int, output_w: int, devnull: int) -> None:
    """Steps 1-3: own session, only the five expected descriptors, an empty environment."""
    os.setsid()
    signal.set_wakeup_fd(-1)
    for signum in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, signal.SIG_DFL)
    _place_fds(job_r, result_w, output_w, devnull)
    os.environ.clear()


def restrict(plan: HardeningPlan, *, workdir: str, zygote_pid: int) -> None:
    """Steps 4-8; raises OSError if a planned step fails."""
    libc = _libc()
    if plan.network_namespace:
        _check(libc.unshare(CLONE_NEWNET), "unshare(CLONE_NEWNET)")
    address_space = _address_space() + plan.memory_bytes  # read /proc before chroot hides it
    os.chdir(workdir)
    if plan.drop_privileges:
        os.chroot(workdir)
        os.chdir("/")
    limits = {
        resource.RLIMIT_CPU: (plan.cpu_seconds, plan.cpu_seconds + 1),
        resource.RLIMIT_AS: (address_space, address_space),
        resource.RLIMIT_FSIZE: (0, 0),
        resource.RLIMIT_NOFILE: (plan.max_open_files, plan.max_open_files),
        resource.RLIMIT_CORE: (0, 0),
        resource.RLIMIT_NPROC: (0, 0),  # binds once we are not root: no fork, no threads
    }
    for kind, value in limits.items():
        resource.setrlimit(kind, value)
    if plan.drop_privileges:
        os.setgroups([])
        os.setresgid(plan.gid, plan.gid, plan.gid)
        os.setresuid(plan.uid, plan.uid, plan.uid)
        if os.getresuid() != (plan.uid,) * 3 or os.getresgid() != (plan.gid,) * 3:
            raise OSError("privileges were not dropped")
    _check(libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0), "prctl(PR_SET_DUMPABLE)")
    _check(libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "prctl(PR_SET_PDEATHSIG)")
    if os.getppid() != zygote_pid:  # the zygote died before PDEATHSIG was armed
        os._exit(EXIT_HARDENING_FAILED)
    if plan.seccomp:
        seccomp_filter.install(os.getpid())


def probe(plan: HardeningPlan, devnull: int, workdir: str) -> dict[str, str | None]:
    """Try each optional step in a throwaway child; map step -> None if it works, else why not.

    Runs in the zygote. Steps: "seccomp", "network_namespace", "drop_privileges".
    """
    wanted = {
        "seccomp": plan.seccomp,
        "network_namespace": plan.network_namespace,
        "drop_privileges": plan.drop_privileges,
    }
    report: dict[str, str | None] = {}
    for step, on in wanted.items():
        if not on:
            report[step] = "switched off in SandboxConfig"
            continue
        if step == "drop_privileges" and os.geteuid() != 0:
            report[step] = "not running as root (chroot and setuid need it)"
            continue
        if step == "seccomp":
            try:
                import pyseccomp  # noqa: F401, PLC0415 - optional: raises where libseccomp is missing
            except (ImportError, RuntimeError, OSError) as exc:
                report[step] = f"libseccomp binding unavailable ({exc})"
                continue
        only = replace(
            plan,
            seccomp=step == "seccomp",
            network_namespace=step == "network_namespace",
            drop_privileges=step == "drop_privileges",
        )
        report[step] = _trial(only, devnull, workdir)
    return report


def _trial(plan: HardeningPlan, devnull: int, workdir: str) -> str | None:
    read_end, write_end = os.pipe()
    zygote = os.getpid()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the throwaway child
        code = 0
        try:
            job_r, job_w = os.pipe()
            os.close(job_w)
            detach(job_r=job_r, result_w=write_end, output_w=devnull, devnull=devnull)
        except BaseException:  # cannot report: the descriptors may be half placed
            os._exit(2)
        try:
            restrict(plan, workdir=workdir, zygote_pid=zygote)
            os.write(RESULT_FD, b"ok")
        except BaseException as exc:  # report the failing step to the zygote, then exit
            os.write(RESULT_FD, f"{type(exc).__name__}: {exc}".encode()[:300])
            code = 1
        os._exit(code)
    os.close(write_end)
    chunks = []
    while chunk := os.read(read_end, 4096):
        chunks.append(chunk)
    os.close(read_end)
    _, status = os.waitpid(pid, 0)
    message = b"".join(chunks).decode(errors="replace")
    if os.waitstatus_to_exitcode(status) == 0 and message == "ok":
        return None
    return message or f"trial child ended with status {os.waitstatus_to_exitcode(status)}"
