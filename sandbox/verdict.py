"""The sandbox's answer for one candidate: a `Verdict` and the enums it is made of.

A verdict is data, never an exception: `Sandbox.validate` returns one for every candidate, good or
bad. A REJECTED verdict names the stage that stopped the candidate, a machine-readable `code`, and
a short `reason` written for the proposer (what is wrong and what to change). An ACCEPTED verdict
carries what the rest of lossforge needs: the fingerprint (duplicate detection), the graph JSON
(the only form in which training ever sees the loss), the canonical code, and the behaviour limits
the battery measured (`BatteryLimits`).

This module does not run checks and does not decide anything; it only defines the shapes.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any


class VerdictStatus(StrEnum):
    ACCEPTED = "accepted"
    REJECTED = "rejected"


class Stage(StrEnum):
    """The layer that rejected a candidate, in the order the layers run."""

    PARSE = "parse"  # the reply or the code could not be read at all
    STATIC = "static"  # layer 1: AST checks
    ISOLATION = "isolation"  # layer 2: the child hit a limit or a forbidden operation
    BATTERY = "battery"  # layer 3: behaviour checks
    GRAPH = "graph"  # layer 4: capture, rebuild against the op allow-list, value agreement
    FINGERPRINT = "fingerprint"  # layer 5


class RejectionCode(StrEnum):
    """Why a candidate was rejected, one value per distinct fault (the reason text adds detail)."""

    # PARSE
    CANDIDATE_FORMAT = "candidate_format"  # no JSON object with "code" and no fenced code block
    SYNTAX_ERROR = "syntax_error"
    # STATIC
    SOURCE_TOO_LARGE = "source_too_large"
    UNSAFE_TEXT = "unsafe_text"  # bidi/invisible/control characters, non-ASCII names, bad UTF-8
    STRUCTURE = "structure"  # not exactly one top-level function, or other top-level statements
    SIGNATURE = "signature"
    FORBIDDEN_SYNTAX = "forbidden_syntax"  # an AST node outside the allow-list (loops, lambdas)
    FORBIDDEN_IMPORT = "forbidden_import"
    FORBIDDEN_NAME = "forbidden_name"
    FORBIDDEN_ATTRIBUTE = "forbidden_attribute"
    DUNDER = "dunder"
    MUTATION = "mutation"  # attribute/item assignment or augmented assignment
    FORBIDDEN_CONSTANT = "forbidden_constant"
    # ISOLATION
    TIMEOUT = "timeout"
    CPU_LIMIT = "cpu_limit"
    MEMORY = "memory"
    OUTPUT_FLOOD = "output_flood"
    FORBIDDEN_OPERATION = "forbidden_operation"  # a blocked system call, file, import or process
    CRASHED = "crashed"
    BAD_REPORT = "bad_report"  # the child's result message was malformed
    # BATTERY
    EXCEPTION = "exception"
    NOT_A_TENSOR = "not_a_tensor"
    BAD_SHAPE = "bad_shape"
    BAD_DTYPE = "bad_dtype"
    NON_FINITE = "non_finite"
    NON_FINITE_GRAD = "non_finite_grad"
    NO_POLICY_GRADIENT = "no_policy_gradient"
    NOT_PERMUTATION_EQUIVARIANT = "not_permutation_equivariant"
    REWARDS_REJECTED = "rewards_rejected"
    BATCH_TOO_SMALL = "batch_too_small"
    INPLACE_INPUT = "inplace_input"
    GRADIENT_MISMATCH = "gradient_mismatch"  # the gradient is not the derivative of the values
    INCONSISTENT = "inconsistent"  # values change with batch size or dtype, without batch stats
    GLOBAL_STATE = "global_state"
    MONKEYPATCH = "monkeypatch"
    # GRAPH
    TRACE_FAILED = "trace_failed"
    MALFORMED_GRAPH = "malformed_graph"
    UNKNOWN_OP = "unknown_op"
    MUTABLE_OP = "mutable_op"
    VALUE_READ = "value_read"  # .item(), .tolist(), math.* on a traced value
    BAKED_DEVICE = "baked_device"
    GRAPH_TOO_LARGE = "graph_too_large"
    TENSOR_TOO_LARGE = "tensor_too_large"
    BAD_OUTPUT = "bad_output"
    TOO_COSTLY = "too_costly"  # cost grows faster than the batch, or far above DPO's
    VALUE_MISMATCH = "value_mismatch"
    # FINGERPRINT
    FINGERPRINT_FAILED = "fingerprint_failed"


@dataclass(frozen=True)
class BatteryLimits:
    """Properties that are limits of a loss rather than faults (DESIGN.md section 3, item 3)."""

    min_batch_size: int  # smallest batch the loss is defined for (a std over one example is NaN)
    overflow_margin: float | None  # smallest |β·Δ| on the probe ladder with non-finite values/grads
    uses_beta: bool  # False when the loss ignores beta (DiscoPOP's PFL as the LLM wrote it)
    batch_dependent: bool  # True when an example's loss depends on the other examples (batch stats)


@dataclass(frozen=True)
class Verdict:
    """Outcome of validating one candidate."""

    status: VerdictStatus
    candidate_name: str
    stage: Stage | None = None  # the layer that rejected; None when accepted
    code: RejectionCode | None = None
    reason: str = ""  # one line for the proposer; empty when accepted
    timings_ms: dict[str, float] = field(default_factory=dict)  # per stage, plus "total"
    fingerprint: str | None = None  # hex digest of values and gradients on the probe set
    graph_json: str | None = None  # canonical graph JSON; rebuild with `rebuild_graph`
    canonical_code: str | None = None  # the code as validated (NFKC names, no comments)
    inputs: tuple[str, ...] = ()  # argument names the graph takes, contract order
    limits: BatteryLimits | None = None

    @property
    def accepted(self) -> bool:
        return self.status is VerdictStatus.ACCEPTED

    def summary(self) -> str:
        """One line: 'ACCEPTED name fp=...' or 'REJECTED [stage/code] reason'."""
        if self.accepted:
            return f"ACCEPTED {self.candidate_name} fingerprint={self.fingerprint}"
        return f"REJECTED [{self.stage}/{self.code}] {' '.join(self.reason.split())}"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["inputs"] = list(self.inputs)
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)
