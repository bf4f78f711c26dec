"""validator.py end to end: the acceptance criteria on honest and misbehaving losses."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from evaluator.baselines import BASELINES
from sandbox import (
    Candidate,
    RejectionCode,
    Sandbox,
    Stage,
    VerdictStatus,
    rebuild_graph,
)
from tests.sandbox.sources import (
    DISCOPOP,
    DPO,
    DPO_SPELLINGS,
    IGNORES_POLICY,
    POSITION_DEPENDENT,
    REWARDS_REJECTED,
)
from tests.sandbox.test_static import mutated_sources

C = RejectionCode


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_every_baseline_is_accepted(sandbox: Sandbox, name: str) -> None:
    verdict = sandbox.validate(Candidate(name, "", BASELINES[name].source))
    assert verdict.status is VerdictStatus.ACCEPTED, verdict.reason
    assert verdict.stage is None and verdict.code is None and verdict.reason == ""


def test_every_discopop_loss_is_accepted_with_its_limits(sandbox: Sandbox) -> None:
    verdicts = {n: sandbox.validate(Candidate(n, "", BASELINES[n].source)) for n in DISCOPOP}
    assert all(v.accepted for v in verdicts.values())
    assert verdicts["aqfl"].limits is not None and verdicts["aqfl"].limits.min_batch_size == 2
    assert verdicts["lrml"].limits is not None and verdicts["lrml"].limits.overflow_margin
    assert verdicts["padll"].limits is not None and verdicts["padll"].limits.uses_beta


@pytest.mark.parametrize(
    ("source", "code"),
    [
        (POSITION_DEPENDENT, C.NOT_PERMUTATION_EQUIVARIANT),
        (IGNORES_POLICY, C.NO_POLICY_GRADIENT),
        (REWARDS_REJECTED, C.REWARDS_REJECTED),
    ],
    ids=["batch-position", "ignores-policy", "rewards-rejected"],
)
def test_misbehaving_losses_are_rejected_with_the_right_reason(
    sandbox: Sandbox, sandbox_no_static: Sandbox, source: str, code: RejectionCode
) -> None:
    for which in (sandbox, sandbox_no_static):
        verdict = which.validate(Candidate("bad", "", source))
        assert (verdict.stage, verdict.code) == (Stage.BATTERY, code), verdict.reason
        assert verdict.reason


def test_accepted_verdict_carries_everything_training_needs(sandbox: Sandbox) -> None:
    verdict = sandbox.validate(Candidate("ipo", "length-normalised", BASELINES["ipo"].source))
    assert verdict.accepted and verdict.fingerprint and verdict.graph_json
    assert verdict.inputs[-2:] == ("chosen_lengths", "rejected_lengths")
    assert verdict.canonical_code is not None and "def loss" in verdict.canonical_code
    assert set(verdict.timings_ms) >= {
        "static",
        "isolation",
        "graph",
        "battery",
        "fingerprint",
        "total",
    }
    module = rebuild_graph(verdict.graph_json)
    assert module.input_names == verdict.inputs
    assert json.loads(verdict.to_json())["status"] == "accepted"
    assert verdict.summary().startswith("ACCEPTED ipo")


def test_two_spellings_get_one_fingerprint(sandbox: Sandbox) -> None:
    digests = {sandbox.validate(Candidate("dpo", "", s)).fingerprint for s in DPO_SPELLINGS}
    assert len(digests) == 1 and None not in digests


def test_replies_are_parsed(sandbox: Sandbox) -> None:
    reply = f"Here is my idea.\n```python\n{DPO}```"
    assert sandbox.validate(reply).accepted
    assert sandbox.validate(json.dumps({"name": "d", "thought": "t", "code": DPO})).accepted
    verdict = sandbox.validate("I have no code today.")
    assert (verdict.stage, verdict.code) == (Stage.PARSE, C.CANDIDATE_FORMAT)


def test_parse_and_size_failures(sandbox: Sandbox, sandbox_no_static: Sandbox) -> None:
    for which in (sandbox, sandbox_no_static):
        broken = which.validate(Candidate("x", "", "def loss(:\n"))
        assert (broken.stage, broken.code) == (Stage.PARSE, C.SYNTAX_ERROR)
        huge = which.validate(Candidate("x", "", DPO + "#" * 20_000))
        assert (huge.stage, huge.code) == (Stage.STATIC, C.SOURCE_TOO_LARGE)


_MARGIN = """\
def loss(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps, beta):
    chosen = policy_chosen_logps - ref_chosen_logps
    z = beta * (chosen - (policy_rejected_logps - ref_rejected_logps))
"""
QUANTILE_LOSSES = [  # DPO plus a hinge below the batch's upper quartile; a lower-quartile shift
    _MARGIN + "    q = torch.quantile(z, 0.75)\n"
    "    return -F.logsigmoid(z) + 0.1 * torch.relu(q - z)\n",
    _MARGIN + "    low = z.quantile(0.25, interpolation='linear').clamp(max=0.0)\n"
    "    return -F.logsigmoid(z - low)\n",
]
# The margin measured from the batch median, with its sign flipped: rewards the rejected answer.
QUANTILE_FLIPPED = _MARGIN + "    return -F.logsigmoid(torch.quantile(z, 0.5) - z)\n"


def test_quantile_losses_are_accepted_and_judged_like_any_other(
    sandbox: Sandbox, sandbox_no_static: Sandbox
) -> None:
    for which in (sandbox, sandbox_no_static):
        for source in QUANTILE_LOSSES:
            verdict = which.validate(Candidate("quantile", "", source))
            assert verdict.accepted, verdict.reason
        flipped = which.validate(Candidate("flipped", "", QUANTILE_FLIPPED))
        assert (flipped.stage, flipped.code) == (Stage.BATTERY, C.REWARDS_REJECTED)


def test_no_allow_listed_op_imports_a_module_after_the_warm_up() -> None:
    """A hardened child cannot import (it is chrooted into an empty directory), so whatever an
    allow-listed op loads on first use must be loaded by the zygote's warm-up (quantile's meta
    kernel imports torch._subclasses.schema_check_mode). Every op runs here on real tensors, with
    a backward pass, and on meta tensors, after child.warm_up() in a fresh interpreter."""
    script = """
import sys, warnings
warnings.simplefilter("ignore")
import torch
from sandbox import allowlist, child
torch.set_num_threads(1)
child.warm_up()
before = set(sys.modules)
ran = 0
for device in ("cpu", "meta"):
    x = torch.rand(8, device=device, requires_grad=device == "cpu")
    index = torch.arange(8, device=device)
    attempts = [(x,), (x, x), (x, 0.5), (x, 0), (x, x, x), ((x, x),), (x, 0, index), (x, (8,))]
    ops = list(allowlist.graph_functions().values())
    ops += [lambda t, *a, m=m: getattr(t, m)(*a) for m in sorted(allowlist.TENSOR_METHODS)]
    for op in ops:
        for args in attempts:
            try:
                out = op(*args)
                if device == "cpu" and isinstance(out, torch.Tensor) and out.requires_grad:
                    out.float().sum().backward()
            except Exception:
                continue
            ran += 1
            break
print(ran, sorted(set(sys.modules) - before))
"""
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    ran, new_modules = result.stdout.strip().split(" ", 1)
    assert int(ran) > 250, result.stdout  # most ops ran, on both devices
    assert new_modules == "[]", f"imported after the warm-up: {new_modules}"


def test_static_off_still_enforces_the_contract(sandbox_no_static: Sandbox) -> None:
    two = sandbox_no_static.validate(Candidate("x", "", DPO + DPO.replace("loss", "other")))
    assert two.accepted  # two functions, one named loss: the child picks `loss`
    wrong = sandbox_no_static.validate(Candidate("x", "", "def f(a, b):\n    return a\n"))
    assert (wrong.stage, wrong.code) == (Stage.BATTERY, C.SIGNATURE)
    none = sandbox_no_static.validate(Candidate("x", "", "x = 1\n"))
    assert (none.stage, none.code) == (Stage.BATTERY, C.STRUCTURE)


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(source=mutated_sources())
def test_mutated_losses_always_get_a_verdict(sandbox: Sandbox, source: str) -> None:
    verdict = sandbox.validate(Candidate("mutant", "", source))
    assert verdict.status in (VerdictStatus.ACCEPTED, VerdictStatus.REJECTED)
    if verdict.accepted:
        assert verdict.fingerprint and verdict.graph_json
    else:
        assert verdict.stage is not None and verdict.code is not None
        assert verdict.reason.strip() and "\n" not in verdict.reason
