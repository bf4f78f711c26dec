"""hardening.py: the steps a worker applies to itself, checked in a forked child."""

from __future__ import annotations

import json
import os
import resource
import tempfile

from sandbox.hardening import HardeningPlan, detach, probe, restrict
from sandbox.protocol import RESULT_FD

PLAN = HardeningPlan(
    cpu_seconds=5,
    memory_bytes=1 << 30,
    max_open_files=16,
    seccomp=True,
    network_namespace=True,
    drop_privileges=True,
)


def test_probe_reports_each_step() -> None:
    with tempfile.TemporaryDirectory() as workdir:
        devnull = os.open(os.devnull, os.O_RDWR)
        try:
            report = probe(PLAN, devnull, workdir)
        finally:
            os.close(devnull)
    assert set(report) == {"seccomp", "network_namespace", "drop_privileges"}
    # None where the step works, else why not; as root (CI, this machine) chroot/setuid work.
    assert all(why is None or (isinstance(why, str) and why) for why in report.values())
    assert (report["drop_privileges"] is None) == (os.geteuid() == 0)


def test_probe_names_switched_off_steps() -> None:
    off = HardeningPlan(
        5, 1 << 30, 16, seccomp=False, network_namespace=False, drop_privileges=False
    )
    with tempfile.TemporaryDirectory() as workdir:
        report = probe(off, os.open(os.devnull, os.O_RDWR), workdir)
    assert set(report.values()) == {"switched off in SandboxConfig"}


def test_a_hardened_child_is_confined() -> None:
    workdir = tempfile.mkdtemp()
    result_r, result_w = os.pipe()
    job_r, _job_w = os.pipe()
    devnull = os.open(os.devnull, os.O_RDWR)
    os.environ["LOSSFORGE_HARDENING_TEST"] = "secret"
    pid = os.fork()
    if pid == 0:  # child: harden, then describe what it sees
        try:
            detach(job_r=job_r, result_w=result_w, output_w=devnull, devnull=devnull)
            restrict(PLAN, workdir=workdir, zygote_pid=os.getppid())
            facts = {
                "uid": os.getuid(),
                "gid": os.getgid(),
                "groups": os.getgroups(),
                "env": dict(os.environ),
                "cwd": os.getcwd(),
                "fsize": resource.getrlimit(resource.RLIMIT_FSIZE),
                "nproc": resource.getrlimit(resource.RLIMIT_NPROC),
                "core": resource.getrlimit(resource.RLIMIT_CORE),
                "cpu": resource.getrlimit(resource.RLIMIT_CPU),
                "fds": sorted(int(fd) for fd in (0, 1, 2, 3, 4, 5, 6, 7, 8) if _open(int(fd))),
            }
            os.write(RESULT_FD, json.dumps(facts).encode())
        finally:
            os._exit(0)
    os.close(result_w)
    facts = json.loads(os.read(result_r, 65536))
    os.waitpid(pid, 0)
    del os.environ["LOSSFORGE_HARDENING_TEST"]
    os.rmdir(workdir)
    assert (facts["uid"], facts["gid"], facts["groups"]) == (65534, 65534, [])
    assert facts["env"] == {} and facts["cwd"] == "/"
    assert facts["fsize"] == [0, 0] and facts["nproc"] == [0, 0] and facts["core"] == [0, 0]
    assert facts["cpu"] == [5, 6]
    assert facts["fds"] == [0, 1, 2, 3, 4]  # everything else was closed


def _open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True
