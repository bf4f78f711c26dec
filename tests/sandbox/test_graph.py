"""Layer 4 (graph_capture.py, graph.py): capture, rebuild against the allow-list, forged JSON."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evaluator.baselines import BASELINES
from sandbox import (
    GraphLimits,
    GraphRejectedError,
    RejectionCode,
    RejectionError,
    graph_capture,
    probes,
    rebuild_graph,
)
from sandbox import allowlist as al
from tests.sandbox.helpers import call_node, define, graph_data, rebuild
from tests.sandbox.sources import DELTA, DPO, loss_source

C = RejectionCode


# Batch statistics at batch size 1 warn (a std over one example); expected here.
pytestmark = pytest.mark.filterwarnings("ignore:.*degrees of freedom:UserWarning")


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_baselines_round_trip(name: str) -> None:
    fn, names = define(BASELINES[name].source)
    graph = rebuild(BASELINES[name].source)
    for batch in probes.value_probes():
        kwargs = probes.select(batch, graph.input_names)
        torch.testing.assert_close(graph(**kwargs), fn(**probes.select(batch, names)))
    assert rebuild_graph(graph.graph_json).graph_json == graph.graph_json  # canonical


def test_loss_graph_module_api() -> None:
    graph = rebuild(BASELINES["ipo"].source)
    assert isinstance(graph, torch.nn.Module)
    assert graph.optional_inputs == ("chosen_lengths", "rejected_lengths")
    kwargs = probes.select(probes.realistic(8, 0.1), graph.input_names)
    as_tensor = graph(**kwargs)
    kwargs["beta"] = 0.1  # a float beta is accepted and becomes a 0-dim tensor
    torch.testing.assert_close(graph(**kwargs), as_tensor)
    assert (
        graph.to(torch.float64)(
            **{
                k: v.double() if v.is_floating_point() else v
                for k, v in probes.select(probes.realistic(8, 0.1), graph.input_names).items()
            }
        ).dtype
        == torch.float64
    )
    with pytest.raises(TypeError, match="missing"):
        graph(policy_chosen_logps=kwargs["policy_chosen_logps"])


def _dpo() -> dict[str, Any]:
    return graph_data(DPO)


def _with_last(node: dict[str, Any]) -> dict[str, Any]:
    data = _dpo()
    data["nodes"].append(node)
    data["output"] = {"node": len(data["nodes"]) - 1}
    return data


LAST = {"node": 10}  # the DPO graph's output node
FORGED = [
    ("unknown op", _with_last(call_node("os.system", {"str": "none"})), C.UNKNOWN_OP, "os.system"),
    (
        "private torch",
        _with_last(call_node("torch._C._nn.log_sigmoid", LAST)),
        C.UNKNOWN_OP,
        "allow",
    ),
    ("setitem", _with_last(call_node("operator.setitem", LAST, 0, 1.0)), C.UNKNOWN_OP, "setitem"),
    (
        "mutable method",
        _with_last(call_node("add_", LAST, 1.0, op="call_method")),
        C.MUTABLE_OP,
        ".add_()",
    ),
    ("copy_", _with_last(call_node("copy_", LAST, LAST, op="call_method")), C.MUTABLE_OP, "copy_"),
    ("out=", _with_last(call_node("torch.exp", LAST, out=LAST)), C.MUTABLE_OP, "out="),
    ("inplace=True", _with_last(call_node("F.relu", LAST, inplace=True)), C.MUTABLE_OP, "inplace"),
    ("item", _with_last(call_node("item", LAST, op="call_method")), C.VALUE_READ, ".item()"),
    ("math on value", _with_last(call_node("math.log", LAST)), C.VALUE_READ, "math.log"),
    ("factory without device", _with_last(call_node("torch.zeros", 3)), C.BAKED_DEVICE, "device"),
    (".cuda()", _with_last(call_node("cuda", LAST, op="call_method")), C.BAKED_DEVICE, "cuda"),
    (
        "bad getattr",
        _with_last(call_node("getattr", LAST, {"str": "data"})),
        C.MALFORMED_GRAPH,
        "string",
    ),
]


def _forged_cases() -> list[tuple[str, dict[str, Any], RejectionCode, str]]:
    cases = list(FORGED)
    data = _dpo()
    data["output"] = {"tuple": [{"node": 10}, {"node": 9}]}
    cases.append(("extra outputs", data, C.BAD_OUTPUT, "tuple of 2"))
    data = _dpo()
    data["nodes"] += [call_node("operator.neg", {"node": 10})] * 600
    cases.append(("huge node count", data, C.GRAPH_TOO_LARGE, "606 operations"))
    data = _dpo()
    data["nodes"][5]["args"] = [{"node": 7}, {"node": 2}]  # refers forward: not a DAG by order
    cases.append(("forward reference", data, C.MALFORMED_GRAPH, "does not precede"))
    data = _dpo()
    data["nodes"][5]["extra"] = 1
    cases.append(("unknown field", data, C.MALFORMED_GRAPH, "exactly"))
    data = _dpo()
    data["inputs"] = data["inputs"][::-1]
    cases.append(("input order", data, C.MALFORMED_GRAPH, "contract order"))
    data = _dpo()
    data["format"] = "pickle"
    cases.append(("format", data, C.MALFORMED_GRAPH, "format"))
    ones = call_node("torch.ones", 10**8, device={"node": 11})
    data = _with_last(call_node("getattr", {"node": 0}, {"str": "device"}))
    data["nodes"].append(ones)
    data["nodes"].append(call_node("operator.add", {"node": 10}, {"node": 12}))
    data["output"] = {"node": 13}
    cases.append(("huge intermediate", data, C.TENSOR_TOO_LARGE, "size caps"))
    shape = call_node("getattr", {"node": 0}, {"str": "shape"})  # node 11
    data = _with_last(shape)
    data["nodes"].append(call_node("operator.mul", {"node": 11}, 10**9))  # a 1e12-element tuple
    cases.append(("shape repetition", data, C.UNKNOWN_OP, "Python values"))
    data = _with_last(call_node("operator.mul", {"list": [0]}, 10**10))
    cases.append(("list repetition", data, C.UNKNOWN_OP, "Python values"))
    data = _with_last(shape)
    data["nodes"].append(call_node("operator.getitem", {"node": 11}, 0))  # node 12: B
    data["nodes"].append(call_node("operator.pow", {"node": 12}, 10**9))
    cases.append(("integer power", data, C.UNKNOWN_OP, "Python values"))
    data = _with_last(shape)
    data["nodes"].append(call_node("operator.getitem", {"node": 11}, 0))
    for index in range(12, 52):  # B, B², B⁴, ...: a huge integer unless stopped early
        data["nodes"].append(call_node("operator.mul", {"node": index}, {"node": index}))
    data["nodes"].append(call_node("operator.add", {"node": 10}, {"node": 52}))
    data["output"] = {"node": len(data["nodes"]) - 1}
    cases.append(("repeated squaring", data, C.TENSOR_TOO_LARGE, "number computed"))
    data = _with_last(shape)
    cases.append(("shape output", data, C.BAD_OUTPUT, "shape"))
    data = _with_last(call_node("sum", {"node": 10}, op="call_method"))
    cases.append(("scalar output", data, C.BAD_OUTPUT, "()"))
    data = _with_last(call_node("operator.gt", {"node": 10}, 0.5))
    data["nodes"].append(call_node("operator.getitem", {"node": 10}, {"node": 11}))  # x[x > 0.5]
    data["output"] = {"node": 12}
    cases.append(("data-dependent shape", data, C.MALFORMED_GRAPH, "meta"))
    return cases


@pytest.mark.parametrize(
    ("label", "data", "code", "fragment"), _forged_cases(), ids=[c[0] for c in _forged_cases()]
)
def test_forged_graphs_are_refused(
    label: str, data: dict[str, Any], code: RejectionCode, fragment: str
) -> None:
    with pytest.raises(GraphRejectedError) as info:
        rebuild_graph(json.dumps(data))
    assert info.value.code is code, info.value.reason
    assert fragment in info.value.reason


@pytest.mark.parametrize("text", ["", "{", "[]", "null", '{"format": 1}', "[" * 100_000])
def test_garbage_json_is_malformed(text: str) -> None:
    with pytest.raises(GraphRejectedError) as info:
        rebuild_graph(text)
    assert info.value.code is C.MALFORMED_GRAPH


def test_json_over_the_byte_cap_is_refused_before_parsing() -> None:
    with pytest.raises(GraphRejectedError) as info:
        rebuild_graph(json.dumps(_dpo()), GraphLimits(max_json_bytes=100))
    assert info.value.code is C.GRAPH_TOO_LARGE


def test_sizes_are_rechecked_for_every_input_shape() -> None:
    # 2**30 // B elements: fine at the meta batch of 1024, a gigabyte at B = 1.
    graph = rebuild(
        loss_source(
            f"z = beta * {DELTA}",
            "big = torch.ones(2 ** 30 // z.shape[0], device=z.device)",
            "return -F.logsigmoid(z) + big.sum() * 0",
        )
    )
    with pytest.raises(GraphRejectedError) as info:
        graph(**probes.select(probes.realistic(1, 0.1), graph.input_names))
    assert info.value.code is C.TENSOR_TOO_LARGE


@pytest.mark.parametrize(
    ("source", "code"),
    [
        (
            loss_source(f"z = beta * {DELTA}", "if z.sum() > 0:", "    return z", "return -z"),
            C.TRACE_FAILED,
        ),
        (loss_source(f"return -F.logsigmoid(math.log(beta) * {DELTA})"), C.VALUE_READ),
        (loss_source(f"return -F.logsigmoid(beta * {DELTA}).cpu()"), C.BAKED_DEVICE),
        (
            loss_source(f"z = beta * {DELTA}", "return -F.logsigmoid(z) + torch.zeros(z.shape[0])"),
            C.BAKED_DEVICE,
        ),
    ],
)
def test_capture_side_rejections(source: str, code: RejectionCode) -> None:
    with pytest.raises(RejectionError) as info:
        rebuild(source)
    assert info.value.code is code, info.value.reason


# --- the allow-list is consistent: every listed op captures, rebuilds and agrees --------------


def _op_expression(kind: str, name: str) -> str:
    y, z = "torch.sigmoid(z)", "z"
    special = {
        "where": "torch.where(z > 0, z, -z)",
        "clamp": "torch.clamp(z, min=-1.0)",
        "clip": "torch.clip(z, -1.0, 1.0)",
        "clamp_min": "torch.clamp_min(z, -1.0)",
        "clamp_max": "torch.clamp_max(z, 1.0)",
        "lerp": "torch.lerp(z, -z, 0.5)",
        "float_power": "torch.float_power(z, 2).float()",
        "pow": "torch.pow(z, 2)",
        "logit": "torch.logit(torch.sigmoid(z))",
        "quantile": "torch.quantile(z, 0.5) + z",
        "median": "torch.median(z) + z",
        "std_mean": "torch.std_mean(z)[0] + z",
        "var_mean": "torch.var_mean(z)[0] + z",
        "stack": "torch.stack([z, z]).sum(0)",
        "cat": "torch.cat([z, z]).view(2, -1).sum(0)",
        "concat": "torch.concat([z, z]).view(2, -1).sum(0)",
        "unsqueeze": "torch.unsqueeze(z, 0)[0]",
        "squeeze": "torch.squeeze(z[None], 0)",
        "reshape": "torch.reshape(z, (-1,))",
        "transpose": "torch.transpose(z[None], 0, 1)[:, 0]",
        "roll": "torch.roll(z, 1)",
        "flip": "torch.flip(z, [0])",
        "gather": "torch.gather(z, 0, torch.zeros_like(z, dtype=torch.int64))",
        "take_along_dim": "torch.take_along_dim(z, torch.zeros_like(z, dtype=torch.int64), 0)",
        "broadcast_to": "torch.broadcast_to(z, z.shape)",
        "full_like": "torch.full_like(z, 2.0)",
        "arange": "torch.arange(z.shape[0], device=z.device) * z",
        "zeros": "torch.zeros(z.shape[0], device=z.device) + z",
        "ones": "torch.ones(z.shape[0], device=z.device) * z",
        "full": "torch.full((z.shape[0],), 2.0, device=z.device) * z",
        "linspace": "torch.linspace(0, 1, z.shape[0], device=z.device) * z",
        "softmax": "torch.softmax(z, 0)",
        "log_softmax": "torch.log_softmax(z, 0)",
        "logsumexp": "torch.logsumexp(z, 0) + z",
        "cumsum": "torch.cumsum(z, 0)",
        "cumprod": "torch.cumprod(torch.sigmoid(z), 0)",
        "logcumsumexp": "torch.logcumsumexp(z, 0)",
        "softmin": "F.softmin(z, 0)",
        "binary_cross_entropy_with_logits": "F.binary_cross_entropy_with_logits(z, "
        "torch.sigmoid(z), reduction='none')",
        "soft_margin_loss": "F.soft_margin_loss(z, z.sign(), reduction='none')",
        "heaviside": "torch.heaviside(z, z)",
        "leaky_relu": "F.leaky_relu(z, 0.1)",
        "max": "torch.max(z, -z)",
        "min": "torch.min(z, -z)",
        "round": "torch.round(z)",
    }
    if name in special:
        return (
            special[name].replace("torch.", kind, 1) if kind == "torch.special." else special[name]
        )
    binary = {
        "atan2",
        "add",
        "sub",
        "subtract",
        "mul",
        "multiply",
        "div",
        "divide",
        "true_divide",
        "fmin",
        "fmax",
        "fmod",
        "remainder",
        "hypot",
        "logaddexp",
        "logaddexp2",
        "xlogy",
        "minimum",
        "maximum",
        "xlog1py",
        "mse_loss",
        "l1_loss",
        "smooth_l1_loss",
        "huber_loss",
    }
    logical = {
        "logical_and",
        "logical_or",
        "logical_xor",
        "gt",
        "lt",
        "ge",
        "le",
        "eq",
        "ne",
        "greater",
        "greater_equal",
        "less",
        "less_equal",
        "not_equal",
    }
    if name in logical:
        return f"{kind}{name}(z > 0, z < 1) * z"
    if name in binary:
        return f"{kind}{name}({y}, {z})"
    if name in ("isnan", "isinf", "isfinite", "isposinf", "isneginf", "logical_not", "all", "any"):
        return f"{kind}{name}(z > 0) * z"
    if name in ("mean", "sum", "nansum", "nanmean", "std", "var", "prod", "amax", "amin"):
        return f"{kind}{name}(z) + z"
    return f"{kind}{name}({y})"


ALL_FUNCTIONS = (
    [("torch.", n) for n in sorted(al.TORCH_FUNCTIONS)]
    + [("torch.special.", n) for n in sorted(al.SPECIAL_FUNCTIONS)]
    + [("F.", n) for n in sorted(al.F_FUNCTIONS)]
)


@pytest.mark.parametrize(("kind", "name"), ALL_FUNCTIONS, ids=[k + n for k, n in ALL_FUNCTIONS])
def test_every_allowed_function_captures_and_rebuilds(kind: str, name: str) -> None:
    expression = _op_expression(kind, name)
    source = loss_source(f"z = beta * {DELTA}", f"return ({expression}).float() + z * 0")
    fn, names = define(source)
    graph = rebuild(source)
    for batch in probes.value_probes():
        torch.testing.assert_close(
            graph(**probes.select(batch, names)), fn(**probes.select(batch, names)), equal_nan=True
        )


def test_graph_function_table_matches_the_static_names() -> None:
    table = al.graph_functions()
    assert {f"torch.{n}" for n in al.TORCH_FUNCTIONS} <= set(table)
    assert {f"F.{n}" for n in al.F_FUNCTIONS} <= set(table)
    assert graph_capture.qualified_name(torch.nn.functional.logsigmoid) == "F.logsigmoid"


def test_capture_encodes_special_values() -> None:
    data = graph_data(
        loss_source(
            f"z = beta * {DELTA}",
            "return torch.clamp(-F.logsigmoid(z), max=math.inf) + z[..., None][:, 0] * 0",
        )
    )
    text = json.dumps(data, allow_nan=False)
    assert '"float": "inf"' in text and '"ellipsis": true' in text and '"slice"' in text
    assert copy.deepcopy(data) == json.loads(text)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=6,
)


@st.composite
def mutated_graphs(draw: st.DrawFn) -> dict[str, Any]:
    data = graph_data(draw(st.sampled_from([DPO, BASELINES["aqfl"].source])))
    for _ in range(draw(st.integers(1, 3))):
        node = data["nodes"][draw(st.integers(0, len(data["nodes"]) - 1))]
        key = draw(st.sampled_from(sorted(node)))
        node[key] = draw(
            JSON_VALUES
            | st.sampled_from(
                [
                    {"node": 99},
                    {"node": -1},
                    {"str": "cuda"},
                    {"dtype": "complex64"},
                    {"slice": [1]},
                    {"tuple": [{"node": 0}] * 100},
                    "add_",
                    "os.system",
                ]
            )
        )
    return data


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_graphs())
def test_mutated_graph_json_is_refused_or_rebuilt_never_crashes(data: dict[str, Any]) -> None:
    outcome: object
    try:
        outcome = rebuild_graph(json.dumps(data))
    except GraphRejectedError as exc:  # any other exception fails the test
        outcome = exc.reason
    assert isinstance(outcome, torch.nn.Module) or (isinstance(outcome, str) and outcome)
