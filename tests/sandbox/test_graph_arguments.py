"""Layer 4 (graph_capture.py, graph.py): arguments bound to each op's signature, by position and
by keyword; tensor methods; in-place edits that slip past the rebuild. (Capture, the allow-list and
forged JSON: test_graph.py.)"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from sandbox import (
    Candidate,
    GraphRejectedError,
    RejectionCode,
    Sandbox,
    Stage,
    probes,
    rebuild_graph,
)
from sandbox import allowlist as al
from tests.sandbox.helpers import call_node, define, graph_data, rebuild
from tests.sandbox.sources import DELTA, DPO, loss_source

C = RejectionCode


# Batch statistics at batch size 1 warn (a std over one example); expected here.
pytestmark = pytest.mark.filterwarnings("ignore:.*degrees of freedom:UserWarning")


# --- arguments bind to the op's signature: one rule by position and by keyword ---------------

Z, LOSS, NEW = {"node": 8}, {"node": 10}, {"node": 11}  # DPO's beta * delta, its output, node 11
NDIM = call_node("getattr", {"node": 0}, {"str": "ndim"})  # a Python number, never a device
CONSTANT = {"op": "constant", "dtype": "float32", "shape": [1], "values": [-1.0]}


def _then(*nodes: dict[str, Any]) -> dict[str, Any]:
    """The DPO graph with `nodes` appended (the first is node 11); the last one is the output."""
    data = graph_data(DPO)
    data["nodes"] += list(nodes)
    data["output"] = {"node": len(data["nodes"]) - 1}
    return data


def _method(target: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
    return call_node(target, *args, op="call_method", **kwargs)


ARGUMENT_CASES = [
    ("leaky_relu", _then(call_node("F.leaky_relu", Z, 1.1, True)), C.MUTABLE_OP, "argument 3"),
    ("relu", _then(call_node("F.relu", Z, True)), C.MUTABLE_OP, "inplace=True) (argument 2"),
    ("hardtanh", _then(call_node("F.hardtanh", Z, -1.0, 1.0, True)), C.MUTABLE_OP, "argument 4"),
    ("truthy flag", _then(call_node("F.elu", Z, 1.0, 1)), C.MUTABLE_OP, "inplace=1"),
    (
        "constant edited in place",
        _then(
            CONSTANT,
            call_node("F.leaky_relu", NEW, 1.1, True),
            call_node("operator.add", LOSS, {"node": 12}),
        ),
        C.MUTABLE_OP,
        "F.leaky_relu(inplace=True)",
    ),
    # No allow-listed op takes out= by position; a tensor passed there binds to nothing.
    ("out by position", _then(call_node("torch.softmax", Z, 0, None, Z)), C.MALFORMED_GRAPH, "fit"),
    (
        "max into tensors",
        _then(call_node("torch.max", Z, 0, False, Z, Z)),
        C.MALFORMED_GRAPH,
        "fit",
    ),
    ("out by keyword", _then(call_node("torch.exp", Z, out=Z)), C.MUTABLE_OP, "out="),
    (
        "requires_grad",
        _then(call_node("torch.zeros_like", Z, requires_grad=True)),
        C.MUTABLE_OP,
        "requires_grad=True",
    ),
    (
        "device index",
        _then(call_node("torch.full_like", Z, 2.0, device=0)),
        C.BAKED_DEVICE,
        "device",
    ),
    (
        "method factory device",
        _then(
            _method("new_zeros", Z, {"list": [1]}, device=0), call_node("operator.add", LOSS, NEW)
        ),
        C.BAKED_DEVICE,
        ".new_zeros(device=...)",
    ),
    ("number as device", _then(NDIM, _method("to", Z, NEW)), C.BAKED_DEVICE, "argument 1"),
    (
        "number as factory device",
        _then(
            NDIM,
            call_node("torch.ones", 1, device=NEW),
            call_node("operator.add", LOSS, {"node": 12}),
        ),
        C.BAKED_DEVICE,
        "torch.ones(device=...)",
    ),
    ("dtype by position", _then(_method("softmax", Z, 0, 6)), C.MALFORMED_GRAPH, "argument 2"),
    (
        "dtype by keyword",
        _then(call_node("torch.cumsum", Z, 0, dtype=6)),
        C.MALFORMED_GRAPH,
        "dtype",
    ),
    ("extra argument", _then(call_node("torch.exp", Z, Z)), C.MALFORMED_GRAPH, "2 positional"),
    ("unknown keyword", _then(call_node("torch.exp", Z, scale=2.0)), C.MALFORMED_GRAPH, "scale"),
]


@pytest.mark.parametrize(
    ("label", "data", "code", "fragment"), ARGUMENT_CASES, ids=[c[0] for c in ARGUMENT_CASES]
)
def test_arguments_are_checked_by_position_and_keyword(
    label: str, data: dict[str, Any], code: RejectionCode, fragment: str
) -> None:
    with pytest.raises(GraphRejectedError) as info:
        rebuild_graph(json.dumps(data))
    assert info.value.code is code, info.value.reason
    assert fragment in info.value.reason, info.value.reason


def _z_and_loss(kwargs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    z = kwargs["beta"] * (
        (kwargs["policy_chosen_logps"] - kwargs["ref_chosen_logps"])
        - (kwargs["policy_rejected_logps"] - kwargs["ref_rejected_logps"])
    )
    return z, -F.logsigmoid(z)


HONEST_ARGUMENTS = [
    ("leaky_relu slope", [call_node("F.leaky_relu", Z, 0.2)], lambda z, _: F.leaky_relu(z, 0.2)),
    (
        "flag False by position",
        [call_node("F.hardtanh", Z, -1.0, 1.0, False)],
        lambda z, _: F.hardtanh(z, -1.0, 1.0),
    ),
    ("clamp bounds", [call_node("torch.clamp", Z, -5, 5)], lambda z, _: torch.clamp(z, -5, 5)),
    (
        "sum over dim 0",
        [_method("sum", Z, 0), call_node("operator.add", LOSS, NEW)],
        lambda z, loss: loss + z.sum(0),
    ),
    (
        "where",
        [call_node("operator.gt", Z, 0.0), call_node("torch.where", NEW, Z, LOSS)],
        lambda z, loss: torch.where(z > 0, z, loss),
    ),
    (
        "spread sizes",
        [_method("view", Z, 1, -1), call_node("operator.getitem", NEW, 0)],
        lambda z, _: z.view(1, -1)[0],
    ),
    (
        "dtype by position",
        [call_node("F.softmax", Z, 0, 3, {"dtype": "float64"}), _method("float", NEW)],
        lambda z, _: F.softmax(z, 0, dtype=torch.float64).float(),
    ),
    (
        "own device",
        [call_node("getattr", Z, {"str": "device"}), _method("to", LOSS, NEW)],
        lambda _, loss: loss,
    ),
]


@pytest.mark.parametrize(
    ("label", "nodes", "expected"), HONEST_ARGUMENTS, ids=[c[0] for c in HONEST_ARGUMENTS]
)
def test_honest_positional_arguments_rebuild_and_agree(
    label: str,
    nodes: list[dict[str, Any]],
    expected: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
) -> None:
    graph = rebuild_graph(json.dumps(_then(*nodes)))
    kwargs = probes.select(probes.realistic(8, 0.1), graph.input_names)
    torch.testing.assert_close(graph(**kwargs), expected(*_z_and_loss(kwargs)))


def test_constants_do_not_drift_across_calls() -> None:
    # The honest twin of "constant edited in place": the same slope, out of place.
    graph = rebuild_graph(
        json.dumps(
            _then(
                CONSTANT,
                call_node("F.leaky_relu", NEW, 1.1),
                call_node("operator.add", LOSS, {"node": 12}),
            )
        )
    )
    kwargs = probes.select(probes.realistic(8, 0.1), graph.input_names)
    first, second = graph(**kwargs), graph(**kwargs)
    torch.testing.assert_close(first, second, rtol=0, atol=0)
    torch.testing.assert_close(first, _z_and_loss(kwargs)[1] - 1.1)


def test_an_in_place_edit_that_slips_past_the_rebuild_is_caught_when_it_runs() -> None:
    # A bug in the argument checks is simulated by editing the rebuilt fx graph directly.
    graph = rebuild_graph(json.dumps(_then(CONSTANT, call_node("operator.add", LOSS, NEW))))
    fx_graph = graph.graph_module.graph
    constant = next(n for n in fx_graph.nodes if n.op == "get_attr")
    with fx_graph.inserting_after(constant):
        fx_graph.call_method("mul_", (constant, 2.0))
    graph.graph_module.recompile()
    kwargs = probes.select(probes.realistic(8, 0.1), graph.input_names)
    with pytest.raises(GraphRejectedError) as info:
        graph(**kwargs)
    assert info.value.code is C.MUTABLE_OP and "in place" in info.value.reason


# Typical calls of every allowed tensor method, positional and keyword arguments mixed; the rest
# are called as z.sigmoid().<method>().
METHOD_CALLS = {
    "add": "z.add(z, alpha=2)",
    "all": "z.gt(0).all() * z",
    "amax": "z.amax(0) + z",
    "amin": "z.amin(dim=0) + z",
    "any": "z.gt(0).any(0) * z",
    "atan2": "z.atan2(z)",
    "bool": "z.bool() * z",
    "broadcast_to": "z.broadcast_to(z.shape)",
    "clamp": "z.clamp(-1, 1)",
    "clamp_max": "z.clamp_max(1.0)",
    "clamp_min": "z.clamp_min(-1.0)",
    "clip": "z.clip(min=-1)",
    "cumprod": "z.cumprod(0)",
    "cumsum": "z.cumsum(dim=0)",
    "detach": "z + z.detach() * 0",
    "dim": "z * z.dim()",
    "div": "z.div(2.0, rounding_mode=None)",
    "divide": "z.divide(z + 10)",
    "eq": "z.eq(z) * z",
    "expand": "z[None].expand(2, -1)[0]",
    "expand_as": "z.expand_as(z)",
    "flip": "z.flip(0)",
    "float_power": "z.float_power(2)",
    "fmax": "z.fmax(z)",
    "fmin": "z.fmin(z)",
    "fmod": "z.fmod(2.0)",
    "gather": "z.gather(0, torch.zeros_like(z, dtype=torch.int64))",
    "ge": "z.ge(0) * z",
    "gt": "z.gt(0) * z",
    "heaviside": "z.heaviside(z)",
    "hypot": "z.hypot(z)",
    "int": "z.int() * 0 + z",
    "le": "z.le(0) * z",
    "lerp": "z.lerp(-z, 0.5)",
    "log_softmax": "z.log_softmax(0)",
    "logaddexp": "z.logaddexp(z)",
    "logcumsumexp": "z.logcumsumexp(0)",
    "logical_and": "z.gt(0).logical_and(z.lt(1)) * z",
    "logical_not": "z.gt(0).logical_not() * z",
    "logical_or": "z.gt(0).logical_or(z.lt(1)) * z",
    "logical_xor": "z.gt(0).logical_xor(z.lt(1)) * z",
    "logit": "z.sigmoid().logit(1e-6)",
    "logsumexp": "z.logsumexp(0) + z",
    "long": "z.long() * 0 + z",
    "lt": "z.lt(0) * z",
    "masked_fill": "z.masked_fill(z > 0, 0.0)",
    "max": "z.max(0).values + z.max() + z.max(z)",
    "maximum": "z.maximum(z)",
    "mean": "z.mean(0, keepdim=True) + z",
    "median": "z.median() + z",
    "min": "z.min(dim=0)[0] + z",
    "minimum": "z.minimum(z)",
    "mul": "z.mul(2)",
    "multiply": "z.multiply(z)",
    "nan_to_num": "z.nan_to_num(0.0, 1.0, -1.0)",
    "nanmean": "z.nanmean() + z",
    "nansum": "z.nansum(0) + z",
    "ne": "z.ne(0) * z",
    "new_full": "z.new_full((z.shape[0],), 2.0) * z",
    "new_ones": "z.new_ones(z.shape[0]) * z",
    "new_zeros": "z.new_zeros(z.shape) + z",
    "norm": "z.norm(2) + z[None].norm(dim=0, p=2) + z",
    "numel": "z * z.numel()",
    "permute": "z[None].permute(1, 0)[:, 0]",
    "pow": "z.pow(2)",
    "prod": "z.sigmoid().prod(0) + z",
    "quantile": "z.quantile(0.5) + z",
    "remainder": "z.remainder(2.0)",
    "reshape": "z.reshape(1, -1)[0] + z.reshape(-1)",
    "roll": "z.roll(1, 0)",
    "round": "z.round(decimals=2)",
    "size": "z * z.size(0) + z.size()[0]",
    "softmax": "z.softmax(0, torch.float64)",
    "squeeze": "z[None].squeeze(0)",
    "std": "z.std(0, True) + z.std(unbiased=False) + z",
    "sub": "z.sub(z, alpha=0.5)",
    "subtract": "z.subtract(1)",
    "sum": "z.sum(0, True) + z.sum(dim=0, dtype=torch.float32) + z",
    "t": "z[None].t()[:, 0]",
    "to": "z.to(torch.float64).to(z.dtype).to(z.device).to(z).to(dtype=torch.float32)",
    "transpose": "z[None].transpose(0, 1)[:, 0]",
    "true_divide": "z.true_divide(2)",
    "type_as": "z.type_as(z)",
    "unsqueeze": "z.unsqueeze(0)[0]",
    "var": "z.var() + z",
    "view": "z.view(-1) + z.view(1, -1)[0] + z.view(z.shape)",
    "view_as": "z.view_as(z)",
    "where": "z.where(z > 0, -z)",
    "xlogy": "z.sigmoid().xlogy(z.sigmoid())",
}


@pytest.mark.parametrize("method", sorted(al.TENSOR_METHODS))
def test_every_allowed_method_captures_and_rebuilds(method: str) -> None:
    expression = METHOD_CALLS.get(method, f"z.sigmoid().{method}()")
    source = loss_source(f"z = beta * {DELTA}", f"return ({expression}).float() + z * 0")
    fn, names = define(source)
    graph = rebuild(source)
    batch = probes.select(probes.realistic(8, 0.1), names)
    torch.testing.assert_close(graph(**batch), fn(**batch), equal_nan=True)


@pytest.mark.parametrize("static_on", [False, True], ids=["static-off", "all-layers"])
def test_a_positional_inplace_flag_in_source_is_rejected(
    static_on: bool, sandboxes: dict[tuple[bool, bool], Sandbox]
) -> None:
    source = loss_source(f"z = beta * {DELTA}", "return -F.logsigmoid(F.leaky_relu(z, 0.1, True))")
    verdict = sandboxes[(static_on, False)].validate(Candidate("leaky", "", source))
    # Without the static layer, capture records the flag and the child's rebuild refuses it.
    expected = (Stage.STATIC, C.MUTATION) if static_on else (Stage.GRAPH, C.MUTABLE_OP)
    assert (verdict.stage, verdict.code) == expected, verdict.reason
    assert "inplace" in verdict.reason
