"""hardening.py: the steps a worker applies to itself, checked in a forked child of a fresh
interpreter."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from sandbox.hardening import HardeningPlan, probe

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


# Forked from a fresh interpreter, as the zygote forks its workers: forking the test process
# itself would inherit whatever it holds (an xdist worker's threads and pipes, its address space),
# and whether it had imported pyseccomp yet depended on which tests ran before.
_CONFINED_CHILD = """
import json, os, resource, sys, tempfile
# As in the zygote, whose probe imports it before any worker forks: after chroot nothing more
# can be imported, and the filter's install needs it.
import pyseccomp
from sandbox.hardening import HardeningPlan, detach, restrict
from sandbox.protocol import RESULT_FD

plan = HardeningPlan(**json.loads(sys.argv[1]))
workdir = tempfile.mkdtemp()
result_r, result_w = os.pipe()
job_r, _job_w = os.pipe()
devnull = os.open(os.devnull, os.O_RDWR)
os.environ["LOSSFORGE_HARDENING_TEST"] = "secret"
pid = os.fork()
if pid == 0:  # child: harden, then describe what it sees
    try:
        detach(job_r=job_r, result_w=result_w, output_w=devnull, devnull=devnull)
        restrict(plan, workdir=workdir, zygote_pid=os.getppid())
        def is_open(fd):
            try:
                os.fstat(fd)
            except OSError:
                return False
            return True
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
            "fds": [fd for fd in range(9) if is_open(fd)],
        }
        os.write(RESULT_FD, json.dumps(facts).encode())
    finally:
        os._exit(0)
os.close(result_w)
facts = os.read(result_r, 65536)
_, status = os.waitpid(pid, 0)
os.rmdir(workdir)
print(json.dumps({"facts": facts.decode(), "status": status}))
"""


def test_a_hardened_child_is_confined() -> None:
    ran = subprocess.run(
        [sys.executable, "-c", _CONFINED_CHILD, json.dumps(dataclasses.asdict(PLAN))],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).parents[2],  # the checkout, importable as in the zygote
    )
    assert ran.returncode == 0, ran.stderr[-3000:]
    out = json.loads(ran.stdout.strip().splitlines()[-1])
    assert out["facts"], f"the hardened child said nothing (wait status {out['status']})"
    facts = json.loads(out["facts"])
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
