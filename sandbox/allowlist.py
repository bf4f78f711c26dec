"""The one allow-list of names a loss may use, shared by the static layer and the graph rebuild.

Layer 1 checks source against these names (`torch.<fn>`, `F.<fn>`, `math.<name>`, tensor methods
and attributes); layer 4 maps graph JSON op names back to callables through `graph_functions()`,
which is built from the same sets, so the two layers cannot drift apart. The sets hold pure,
deterministic, out-of-place operations; anything that mutates, reads a value into Python, draws
random numbers or names a device is left out on purpose.

This module only lists names. It does not check code (static.py) or graphs (graph.py).
"""

from __future__ import annotations

import builtins
import functools
import operator
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

# The name lists stay packed: one name per line would triple the file.
# fmt: off
# Elementwise, reduction and shape functions callable as torch.<name> (and graph targets).
_ELEMENTWISE = frozenset(
    {
        "abs", "absolute", "acos", "acosh", "add", "asin", "asinh", "atan", "atan2", "atanh",
        "ceil", "clamp", "clamp_max", "clamp_min", "clip", "cos", "cosh", "digamma", "div",
        "divide", "eq", "erf", "erfc", "erfinv", "exp", "exp2", "expm1", "float_power",
        "floor", "fmax", "fmin", "fmod", "frac", "ge", "greater", "greater_equal", "gt",
        "heaviside", "hypot", "isfinite", "isinf", "isnan", "isneginf", "isposinf", "le",
        "lerp", "less", "less_equal", "lgamma", "log", "log10", "log1p", "log2", "logaddexp",
        "logaddexp2", "logical_and", "logical_not", "logical_or", "logical_xor", "logit", "lt",
        "maximum", "minimum", "mul", "multiply", "nan_to_num", "ne", "neg", "negative",
        "not_equal", "pow", "reciprocal", "relu", "remainder", "round", "rsqrt", "sgn",
        "sigmoid", "sign", "sin", "sinh", "sqrt", "square", "sub", "subtract", "tan", "tanh",
        "true_divide", "trunc", "where", "xlogy"
    }
)
_REDUCTIONS = frozenset(
    {
        "all", "amax", "amin", "any", "cumprod", "cumsum", "log_softmax", "logcumsumexp",
        "logsumexp", "max", "mean", "median", "min", "nanmean", "nansum", "prod",
        "quantile", "softmax", "std", "std_mean", "sum", "var", "var_mean"
    }
)
_SHAPES = frozenset(
    {
        "broadcast_to", "cat", "concat", "flatten", "flip", "full_like", "gather", "ones_like",
        "reshape", "roll", "squeeze", "stack", "take_along_dim", "transpose", "unsqueeze",
        "zeros_like"
    }
)
# Factories: allowed in graphs only with device=<a graph value>, so no device is baked in.
FACTORY_FUNCTIONS = frozenset({"arange", "zeros", "ones", "full", "linspace"})
TORCH_FUNCTIONS = _ELEMENTWISE | _REDUCTIONS | _SHAPES | FACTORY_FUNCTIONS
# Evaluated while tracing (their arguments are Python numbers), so they become graph constants.
TORCH_CONSTRUCTORS = frozenset({"tensor", "as_tensor", "scalar_tensor"})
TORCH_DTYPES = frozenset(
    {
        "bfloat16", "bool", "double", "float", "float16", "float32", "float64", "half", "int",
        "int32", "int64", "long"
    }
)
TORCH_CONSTANTS = frozenset({"pi", "e", "inf", "nan"})
TORCH_ANNOTATIONS = frozenset({"Tensor", "FloatTensor"})  # only inside annotations

SPECIAL_FUNCTIONS = frozenset(
    {
        "digamma", "entr", "erf", "erfc", "erfcx", "erfinv", "exp2", "expit", "expm1",
        "gammaln", "log1p", "log_ndtr", "log_softmax", "logit", "logsumexp", "ndtr", "psi",
        "softmax", "xlog1py", "xlogy"
    }
)
F_FUNCTIONS = frozenset(
    {
        "binary_cross_entropy_with_logits", "celu", "elu", "gelu", "hardshrink", "hardsigmoid",
        "hardtanh", "huber_loss", "l1_loss", "leaky_relu", "log_softmax", "logsigmoid", "mish",
        "mse_loss", "relu", "relu6", "selu", "sigmoid", "silu", "smooth_l1_loss",
        "soft_margin_loss", "softmax", "softmin", "softplus", "softshrink", "softsign", "tanh",
        "tanhshrink"
    }
)
MATH_NAMES = frozenset(
    {
        "atan", "ceil", "cos", "cosh", "e", "erf", "erfc", "exp", "expm1", "fabs", "floor",
        "inf", "lgamma", "log", "log10", "log1p", "log2", "nan", "pi", "pow", "sin", "sinh",
        "sqrt", "tanh", "tau"
    }
)
TENSOR_METHODS = frozenset(
    {
        "abs", "absolute", "acos", "add", "all", "amax", "amin", "any", "asin", "atan",
        "atan2", "bfloat16", "bool", "broadcast_to", "ceil", "clamp", "clamp_max", "clamp_min",
        "clip", "clone", "contiguous", "cos", "cosh", "cumprod", "cumsum", "detach", "digamma",
        "dim", "div", "divide", "double", "eq", "erf", "erfc", "erfinv", "exp", "exp2",
        "expand", "expand_as", "expm1", "flatten", "flip", "float", "float_power", "floor",
        "fmax", "fmin", "fmod", "frac", "gather", "ge", "gt", "half", "heaviside", "hypot",
        "int", "isfinite", "isinf", "isnan", "le", "lerp", "lgamma", "log", "log10", "log1p",
        "log2", "log_softmax", "logaddexp", "logcumsumexp", "logical_and", "logical_not",
        "logical_or", "logical_xor", "logit", "logsumexp", "long", "lt", "masked_fill", "max",
        "maximum", "mean", "median", "min", "minimum", "mul", "multiply", "nan_to_num",
        "nanmean", "nansum", "ne", "neg", "negative", "new_full", "new_ones", "new_zeros",
        "norm", "numel", "permute", "pow", "prod", "quantile", "reciprocal", "relu",
        "remainder", "reshape", "roll", "round", "rsqrt", "sgn", "sigmoid", "sign", "sin",
        "sinh", "size", "softmax", "sqrt", "square", "squeeze", "std", "sub", "subtract",
        "sum", "t", "tanh", "to", "transpose", "true_divide", "trunc", "type_as", "unsqueeze",
        "var", "view", "view_as", "where", "xlogy"
    }
)
# Attributes readable on tensors (and on the namedtuples of max/min/median).
TENSOR_ATTRIBUTES = frozenset({"shape", "dtype", "device", "ndim", "values", "indices"})
BUILTIN_NAMES = frozenset({"abs"})  # Python builtins a loss may call
MODULE_NAMES = frozenset({"torch", "F", "math"})
# String constants a loss may pass (reductions, quantile interpolation, gelu approximation).
STRING_CONSTANTS = frozenset(
    {"none", "mean", "sum", "linear", "lower", "higher", "midpoint", "nearest", "tanh"}
)
# Method names that read a tensor's value into Python; rejected with VALUE_READ, not UNKNOWN_OP.
VALUE_READ_METHODS = frozenset({"item", "tolist", "numpy", "__float__", "__int__", "__bool__"})
DEVICE_METHODS = frozenset({"cpu", "cuda", "mps", "xpu", "pin_memory"})

_OPERATORS = (
    "add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "neg", "pos", "abs", "invert",
    "and_", "or_", "xor", "gt", "lt", "ge", "le", "eq", "ne", "getitem",
)
# fmt: on


def is_dunder(name: str) -> bool:
    return len(name) > 4 and name.startswith("__") and name.endswith("__")


def is_mutating_method(name: str) -> bool:
    """In-place tensor methods end with one underscore (`add_`, `copy_`); dunders do not count."""
    return name.endswith("_") and not is_dunder(name)


@functools.cache
def graph_functions() -> dict[str, Callable[..., Any]]:
    """Graph op name -> callable, for call_function nodes. Built on first use, not at import."""
    table: dict[str, Callable[..., Any]] = {}
    for name in sorted(TORCH_FUNCTIONS):
        table[f"torch.{name}"] = getattr(torch, name)
    for name in sorted(SPECIAL_FUNCTIONS):
        table[f"torch.special.{name}"] = getattr(torch.special, name)
    for name in sorted(F_FUNCTIONS):
        table[f"F.{name}"] = getattr(F, name)
    for name in _OPERATORS:
        table[f"operator.{name}"] = getattr(operator, name)
    table["getattr"] = builtins.getattr
    table["abs"] = builtins.abs
    return table


@functools.cache
def graph_function_names() -> dict[int, str]:
    """id(callable) -> graph op name; the first name wins where two names share one object."""
    names: dict[int, str] = {}
    for name, fn in graph_functions().items():
        names.setdefault(id(fn), name)
    return names
