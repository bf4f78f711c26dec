"""Layer 4 (graph_capture.py, graph.py): capture, rebuild against the allow-list, forged JSON."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evaluator.baselines import BASELINES
from sandbox import (
    Candidate,
    GraphLimits,
    GraphRejectedError,
    RejectionCode,
    RejectionError,
    Sandbox,
    Stage,
    graph_capture,
    probes,
    rebuild_graph,
)
from sandbox import allowlist as al
from tests.sandbox.helpers import define, graph_data, rebuild
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


def _call(target: str, *args: Any, op: str = "call_function", **kwargs: Any) -> dict[str, Any]:
    return {"op": op, "target": target, "args": list(args), "kwargs": kwargs}


def _with_last(node: dict[str, Any]) -> dict[str, Any]:
    data = _dpo()
    data["nodes"].append(node)
    data["output"] = {"node": len(data["nodes"]) - 1}
    return data


LAST = {"node": 10}  # the DPO graph's output node
FORGED = [
    ("unknown op", _with_last(_call("os.system", {"str": "none"})), C.UNKNOWN_OP, "os.system"),
    ("private torch", _with_last(_call("torch._C._nn.log_sigmoid", LAST)), C.UNKNOWN_OP, "allow"),
    ("setitem", _with_last(_call("operator.setitem", LAST, 0, 1.0)), C.UNKNOWN_OP, "setitem"),
    (
        "mutable method",
        _with_last(_call("add_", LAST, 1.0, op="call_method")),
        C.MUTABLE_OP,
        ".add_()",
    ),
    ("copy_", _with_last(_call("copy_", LAST, LAST, op="call_method")), C.MUTABLE_OP, "copy_"),
    ("out=", _with_last(_call("torch.exp", LAST, out=LAST)), C.MUTABLE_OP, "out="),
    ("inplace=True", _with_last(_call("F.relu", LAST, inplace=True)), C.MUTABLE_OP, "inplace"),
    ("item", _with_last(_call("item", LAST, op="call_method")), C.VALUE_READ, ".item()"),
    ("math on value", _with_last(_call("math.log", LAST)), C.VALUE_READ, "math.log"),
    ("factory without device", _with_last(_call("torch.zeros", 3)), C.BAKED_DEVICE, "device"),
    (".cuda()", _with_last(_call("cuda", LAST, op="call_method")), C.BAKED_DEVICE, "cuda"),
    (
        "bad getattr",
        _with_last(_call("getattr", LAST, {"str": "data"})),
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
    data["nodes"] += [_call("operator.neg", {"node": 10})] * 600
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
    ones = _call("torch.ones", 10**8, device={"node": 11})
    data = _with_last(_call("getattr", {"node": 0}, {"str": "device"}))
    data["nodes"].append(ones)
    data["nodes"].append(_call("operator.add", {"node": 10}, {"node": 12}))
    data["output"] = {"node": 13}
    cases.append(("huge intermediate", data, C.TENSOR_TOO_LARGE, "size caps"))
    shape = _call("getattr", {"node": 0}, {"str": "shape"})  # node 11
    data = _with_last(shape)
    data["nodes"].append(_call("operator.mul", {"node": 11}, 10**9))  # a 1e12-element tuple
    cases.append(("shape repetition", data, C.UNKNOWN_OP, "Python values"))
    data = _with_last(_call("operator.mul", {"list": [0]}, 10**10))
    cases.append(("list repetition", data, C.UNKNOWN_OP, "Python values"))
    data = _with_last(shape)
    data["nodes"].append(_call("operator.getitem", {"node": 11}, 0))  # node 12: B
    data["nodes"].append(_call("operator.pow", {"node": 12}, 10**9))
    cases.append(("integer power", data, C.UNKNOWN_OP, "Python values"))
    data = _with_last(shape)
    data["nodes"].append(_call("operator.getitem", {"node": 11}, 0))
    for index in range(12, 52):  # B, B², B⁴, ...: a huge integer unless stopped early
        data["nodes"].append(_call("operator.mul", {"node": index}, {"node": index}))
    data["nodes"].append(_call("operator.add", {"node": 10}, {"node": 52}))
    data["output"] = {"node": len(data["nodes"]) - 1}
    cases.append(("repeated squaring", data, C.TENSOR_TOO_LARGE, "number computed"))
    data = _with_last(shape)
    cases.append(("shape output", data, C.BAD_OUTPUT, "shape"))
    data = _with_last(_call("sum", {"node": 10}, op="call_method"))
    cases.append(("scalar output", data, C.BAD_OUTPUT, "()"))
    data = _with_last(_call("operator.gt", {"node": 10}, 0.5))
    data["nodes"].append(_call("operator.getitem", {"node": 10}, {"node": 11}))  # x[x > 0.5]
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


# --- arguments bind to the op's signature: one rule by position and by keyword ---------------

Z, LOSS, NEW = {"node": 8}, {"node": 10}, {"node": 11}  # DPO's beta * delta, its output, node 11
NDIM = _call("getattr", {"node": 0}, {"str": "ndim"})  # a Python number, never a device
CONSTANT = {"op": "constant", "dtype": "float32", "shape": [1], "values": [-1.0]}


def _then(*nodes: dict[str, Any]) -> dict[str, Any]:
    """The DPO graph with `nodes` appended (the first is node 11); the last one is the output."""
    data = _dpo()
    data["nodes"] += list(nodes)
    data["output"] = {"node": len(data["nodes"]) - 1}
    return data


def _method(target: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
    return _call(target, *args, op="call_method", **kwargs)


ARGUMENT_CASES = [
    ("leaky_relu", _then(_call("F.leaky_relu", Z, 1.1, True)), C.MUTABLE_OP, "argument 3"),
    ("relu", _then(_call("F.relu", Z, True)), C.MUTABLE_OP, "inplace=True) (argument 2"),
    ("hardtanh", _then(_call("F.hardtanh", Z, -1.0, 1.0, True)), C.MUTABLE_OP, "argument 4"),
    ("truthy flag", _then(_call("F.elu", Z, 1.0, 1)), C.MUTABLE_OP, "inplace=1"),
    (
        "constant edited in place",
        _then(
            CONSTANT,
            _call("F.leaky_relu", NEW, 1.1, True),
            _call("operator.add", LOSS, {"node": 12}),
        ),
        C.MUTABLE_OP,
        "F.leaky_relu(inplace=True)",
    ),
    # No allow-listed op takes out= by position; a tensor passed there binds to nothing.
    ("out by position", _then(_call("torch.softmax", Z, 0, None, Z)), C.MALFORMED_GRAPH, "fit"),
    ("max into tensors", _then(_call("torch.max", Z, 0, False, Z, Z)), C.MALFORMED_GRAPH, "fit"),
    ("out by keyword", _then(_call("torch.exp", Z, out=Z)), C.MUTABLE_OP, "out="),
    (
        "requires_grad",
        _then(_call("torch.zeros_like", Z, requires_grad=True)),
        C.MUTABLE_OP,
        "requires_grad=True",
    ),
    ("device index", _then(_call("torch.full_like", Z, 2.0, device=0)), C.BAKED_DEVICE, "device"),
    (
        "method factory device",
        _then(_method("new_zeros", Z, {"list": [1]}, device=0), _call("operator.add", LOSS, NEW)),
        C.BAKED_DEVICE,
        ".new_zeros(device=...)",
    ),
    ("number as device", _then(NDIM, _method("to", Z, NEW)), C.BAKED_DEVICE, "argument 1"),
    (
        "number as factory device",
        _then(NDIM, _call("torch.ones", 1, device=NEW), _call("operator.add", LOSS, {"node": 12})),
        C.BAKED_DEVICE,
        "torch.ones(device=...)",
    ),
    ("dtype by position", _then(_method("softmax", Z, 0, 6)), C.MALFORMED_GRAPH, "argument 2"),
    ("dtype by keyword", _then(_call("torch.cumsum", Z, 0, dtype=6)), C.MALFORMED_GRAPH, "dtype"),
    ("extra argument", _then(_call("torch.exp", Z, Z)), C.MALFORMED_GRAPH, "2 positional"),
    ("unknown keyword", _then(_call("torch.exp", Z, scale=2.0)), C.MALFORMED_GRAPH, "scale"),
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
    ("leaky_relu slope", [_call("F.leaky_relu", Z, 0.2)], lambda z, _: F.leaky_relu(z, 0.2)),
    (
        "flag False by position",
        [_call("F.hardtanh", Z, -1.0, 1.0, False)],
        lambda z, _: F.hardtanh(z, -1.0, 1.0),
    ),
    ("clamp bounds", [_call("torch.clamp", Z, -5, 5)], lambda z, _: torch.clamp(z, -5, 5)),
    (
        "sum over dim 0",
        [_method("sum", Z, 0), _call("operator.add", LOSS, NEW)],
        lambda z, loss: loss + z.sum(0),
    ),
    (
        "where",
        [_call("operator.gt", Z, 0.0), _call("torch.where", NEW, Z, LOSS)],
        lambda z, loss: torch.where(z > 0, z, loss),
    ),
    (
        "spread sizes",
        [_method("view", Z, 1, -1), _call("operator.getitem", NEW, 0)],
        lambda z, _: z.view(1, -1)[0],
    ),
    (
        "dtype by position",
        [_call("F.softmax", Z, 0, 3, {"dtype": "float64"}), _method("float", NEW)],
        lambda z, _: F.softmax(z, 0, dtype=torch.float64).float(),
    ),
    (
        "own device",
        [_call("getattr", Z, {"str": "device"}), _method("to", LOSS, NEW)],
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
                CONSTANT, _call("F.leaky_relu", NEW, 1.1), _call("operator.add", LOSS, {"node": 12})
            )
        )
    )
    kwargs = probes.select(probes.realistic(8, 0.1), graph.input_names)
    first, second = graph(**kwargs), graph(**kwargs)
    torch.testing.assert_close(first, second, rtol=0, atol=0)
    torch.testing.assert_close(first, _z_and_loss(kwargs)[1] - 1.1)


def test_an_in_place_edit_that_slips_past_the_rebuild_is_caught_when_it_runs() -> None:
    # A bug in the argument checks is simulated by editing the rebuilt fx graph directly.
    graph = rebuild_graph(json.dumps(_then(CONSTANT, _call("operator.add", LOSS, NEW))))
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
