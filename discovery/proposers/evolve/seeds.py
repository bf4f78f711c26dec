"""The baseline losses of evaluator/baselines.py written as expression trees: `evolve`'s seeds.

Each tree computes the same per-example values as the baseline's source, operation for
operation (the tests check them to 1e-6 on realistic inputs), except where the language cannot
say it exactly:

- `dbaql` uses Var(z/0.05) over the batch; the language has std, so the tree uses std² (equal up
  to rounding, and the blend weight sigmoid(·) is saturated at realistic batch spreads anyway);
- `lrml` and `cell` use exp(-z), evaluated here as exp(min(-z, 50)): equal wherever -βΔ <= 50;
- `mrpo` needs the (K, B) reference tensors, which are not leaves of the language: no seed.

This module only builds trees; it does not run them or check them against the baselines.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from discovery.proposers.evolve.expr import Node, call, const, leaf

__all__ = ["EXACT_SEEDS", "SEED_TREES"]


def _unary(op: str) -> Callable[[Node], Node]:
    return lambda x: call(op, x)


logsigmoid, sigmoid, exp = _unary("logsigmoid"), _unary("sigmoid"), _unary("exp")
relu, square, abs_ = _unary("relu"), _unary("square"), _unary("abs")
mean, std = _unary("mean"), _unary("std")

BETA, DELTA = leaf("beta"), leaf("delta")
S_C, S_R = leaf("s_c"), leaf("s_r")
S_C_AVG, S_R_AVG, PI_DELTA = leaf("s_c_avg"), leaf("s_r_avg"), leaf("pi_delta")
Z = BETA * DELTA  # z = βΔ


def where(cond: Node, a: Node, b: Node) -> Node:
    """where(cond > 0, a, b)."""
    return call("where", cond, a, b)


def _robust(flip_rate: float = 0.1) -> Node:
    # rDPO, arXiv 2403.00409: [-(1-ε) logσ(z) + ε logσ(-z)] / (1 - 2ε)
    clean = const(-(1 - flip_rate)) * logsigmoid(Z)
    flipped = const(-flip_rate) * logsigmoid(-Z)
    return (clean - flipped) / const(1 - 2 * flip_rate)


def _exo_pair(smoothing: float = 1e-3) -> Node:
    # EXO-pref, arXiv 2402.00856 Eq. 16
    chosen = sigmoid(Z) * (logsigmoid(Z) - const(math.log1p(-smoothing)))
    rejected = sigmoid(-Z) * (logsigmoid(-Z) - const(math.log(smoothing)))
    return chosen + rejected


def _lrml(tau: float = 0.05) -> Node:
    # DiscoPOP / LRML, arXiv 2406.08414 Eq. 5
    modulation = sigmoid(Z / const(tau))
    return (1 - modulation) * -logsigmoid(Z) + modulation * exp(-Z)


def _aqfl() -> Node:
    scaled = Z / const(0.05)
    quantile = std(scaled) * mean(sigmoid(-scaled))
    quantile = quantile + const(0.05) * (sigmoid(mean(scaled)) - quantile)
    blend = sigmoid(const(0.1) * abs_(scaled - quantile))
    return blend * -logsigmoid(Z) + (1 - blend) * relu(1 - Z)


def _dbaql(temperature: float = 0.9) -> Node:
    blend = sigmoid(square(std(Z / const(0.05))))  # Var as std²
    logistic = -logsigmoid(Z / const(temperature))
    exponential = exp(-Z * const(temperature))
    return blend * logistic + (1 - blend) * exponential


def _aql() -> Node:
    scaled = Z / const(0.05)
    moving_quantile = const(0.5) + const(0.01) * (sigmoid(mean(scaled)) - const(0.5))
    weight = sigmoid(-(scaled - moving_quantile))
    return weight * -logsigmoid(Z) + (1 - weight) * relu(1 - Z)


def _build() -> dict[str, Node]:
    logistic = -logsigmoid(Z)
    chosen_rewards, rejected_rewards = BETA * S_C, BETA * S_R
    half_over_beta = const(0.5) / BETA  # 1/(2β)
    return {
        "dpo": logistic,  # arXiv 2305.18290 Eq. 7
        "hinge": relu(1 - Z),  # SLiC-HF / RSO hinge
        "ipo": square(S_C_AVG - S_R_AVG - const(1) / (2 * BETA)),  # arXiv 2310.12036 Eq. 17
        "robust": _robust(),
        "nca_pair": (
            -logsigmoid(chosen_rewards)
            - const(0.5) * logsigmoid(-chosen_rewards)
            - const(0.5) * logsigmoid(-rejected_rewards)
        ),
        "bco_pair": -logsigmoid(chosen_rewards) - logsigmoid(-rejected_rewards),
        "sppo_hard": square(S_C - half_over_beta) + square(S_R + half_over_beta),
        "apo_zero": (1 - sigmoid(chosen_rewards)) + sigmoid(rejected_rewards),
        "apo_down": sigmoid(chosen_rewards) + (1 - sigmoid(Z)),
        "exo_pair": _exo_pair(),
        "lrml": _lrml(),
        "padll": where(-DELTA, const(0.45) * logistic, const(0.9) * logistic),
        "cell": const(0.5) * exp(-Z) + const(0.5) * logistic,
        "pfl": where(PI_DELTA, logistic / const(2.0), relu(1 - Z) * const(2.0)),
        "aqfl": _aqfl(),
        "dbaql": _dbaql(),
        "aql": _aql(),
    }


SEED_TREES: dict[str, Node] = _build()
# Seeds whose values equal the baseline's to rounding (see the module docstring for the rest).
EXACT_SEEDS: frozenset[str] = frozenset(SEED_TREES) - {"dbaql"}
