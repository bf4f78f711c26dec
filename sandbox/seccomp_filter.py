"""The seccomp syscall filter a child installs on itself, through libseccomp (`pyseccomp`).

The filter allows by default and denies, with EPERM, the system calls that no loss needs and
every escape does (listed in `DENIED`): creating processes (fork, vfork, clone without
CLONE_THREAD; clone3 answers ENOSYS so libc falls back to clone for threads), exec, sockets of
any kind, opening files at all (reads included: the child has what it needs in memory before the
filter goes on), every call that changes the file system, signals to any process but itself,
raising resource limits, changing identity or namespaces, tracing or reading other processes'
memory, and the kernel attack surface a sandbox never needs (bpf, io_uring, userfaultfd,
perf_event_open, keyrings, modules). A syscall from a foreign ABI (i386 `int 0x80`, x32) kills
the process, so the deny list cannot be bypassed by switching architecture.

Why a deny list and not an allow list: the allowed surface is "what CPython and torch's CPU
kernels use", which moves between versions; a too-tight allow list breaks honest losses with
unreadable errors, while the denied set above is stable and covers exec, fork, sockets and
writes, the properties the issue asks for. The other layers (uid nobody in an empty chroot, an
empty network namespace, rlimits) back it up where it is missing.

This module only builds and loads the filter; deciding whether seccomp is available and what to
do otherwise is hardening.py's job.
"""

from __future__ import annotations

import errno
from typing import Any

CLONE_THREAD = 0x00010000
TIOCSTI = 0x5412  # push bytes into a terminal's input queue
TIOCLINUX = 0x541C

# fmt: off
DENIED: tuple[str, ...] = (
    # processes and programs
    "fork", "vfork", "execve", "execveat",
    # networking: no socket of any family
    "socket", "socketpair", "connect", "bind", "listen", "accept", "accept4", "sendto",
    "sendmsg", "sendmmsg", "recvfrom", "recvmsg", "recvmmsg", "setsockopt", "getsockopt",
    # files: no open at all, no change to the file system
    "open", "openat", "creat", "name_to_handle_at", "open_by_handle_at", "unlink", "unlinkat",
    "rename", "renameat", "renameat2", "mkdir", "mkdirat", "rmdir", "link", "linkat",
    "symlink", "symlinkat", "chmod", "fchmod", "fchmodat", "chown", "fchown", "lchown",
    "fchownat", "truncate", "ftruncate", "mknod", "mknodat", "utime", "utimes", "utimensat",
    "futimesat", "setxattr", "lsetxattr", "fsetxattr", "removexattr", "lremovexattr",
    "fremovexattr", "fallocate", "memfd_create", "inotify_init", "inotify_init1",
    "fanotify_init",
    # identity, limits, namespaces, mounts
    "setuid", "setgid", "setreuid", "setregid", "setresuid", "setresgid", "setfsuid",
    "setfsgid", "setgroups", "capset", "setrlimit", "unshare", "setns", "mount", "umount2",
    "pivot_root", "chroot", "personality",
    # other processes
    "ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_open", "pidfd_getfd",
    "pidfd_send_signal", "tkill",
    # kernel attack surface
    "bpf", "perf_event_open", "userfaultfd", "io_uring_setup", "io_uring_enter",
    "io_uring_register", "keyctl", "add_key", "request_key", "kexec_load", "kexec_file_load",
    "init_module", "finit_module", "delete_module", "reboot", "swapon", "swapoff", "acct",
    "quotactl", "syslog", "iopl", "ioperm", "uselib", "vhangup", "sethostname",
    "setdomainname", "settimeofday", "clock_settime", "clock_adjtime", "adjtimex",
    "lookup_dcookie", "fsopen", "fsconfig", "fsmount", "move_mount", "open_tree",
    "mount_setattr",
)
# fmt: on
ENOSYS_CALLS: tuple[str, ...] = ("clone3", "openat2")  # libc falls back to the inspectable call


def install(pid: int) -> None:
    """Build and load the filter for process `pid` (the caller). Raises OSError on failure."""
    import pyseccomp as seccomp  # noqa: PLC0415 - optional: raises where libseccomp is missing

    deny = seccomp.ERRNO(errno.EPERM)
    flt: Any = seccomp.SyscallFilter(seccomp.ALLOW)
    flt.set_attr(seccomp.Attr.ACT_BADARCH, seccomp.KILL_PROCESS)

    def rule(action: int, name: str, *args: Any) -> None:
        number = seccomp.resolve_syscall(seccomp.Arch.NATIVE, name)
        if number < 0:  # no such syscall on this architecture (e.g. fork on aarch64)
            return
        flt.add_rule(action, number, *args)

    for name in DENIED:
        rule(deny, name)
    for name in ENOSYS_CALLS:
        rule(seccomp.ERRNO(errno.ENOSYS), name)
    # clone is how threads are made too: deny it only without CLONE_THREAD (fork via clone).
    rule(deny, "clone", seccomp.Arg(0, seccomp.MASKED_EQ, CLONE_THREAD, 0))
    # Signals: only to ourselves.
    rule(deny, "kill", seccomp.Arg(0, seccomp.NE, pid))
    rule(deny, "tgkill", seccomp.Arg(0, seccomp.NE, pid))
    rule(deny, "rt_sigqueueinfo", seccomp.Arg(0, seccomp.NE, pid))
    rule(deny, "rt_tgsigqueueinfo", seccomp.Arg(0, seccomp.NE, pid))
    # prlimit64 with a new limit (arg 2 non-NULL) sets limits; reading them stays allowed.
    rule(deny, "prlimit64", seccomp.Arg(2, seccomp.NE, 0))
    rule(deny, "ioctl", seccomp.Arg(1, seccomp.EQ, TIOCSTI))
    rule(deny, "ioctl", seccomp.Arg(1, seccomp.EQ, TIOCLINUX))
    flt.load()
