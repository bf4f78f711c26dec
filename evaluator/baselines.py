"""Baseline preference-optimization losses, as contract source code, in one registry.

Every baseline is the code string a candidate would submit (DESIGN.md section 2): it defines
exactly one function ``loss(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps,
ref_rejected_logps, beta, ...)`` that returns per-example losses of shape (B,), uses only ``torch``,
``F`` and ``math``, and works with ``beta`` as a Python float or a 0-dim tensor. The registry
``BASELINES`` maps a short name to a :class:`Baseline` that carries that source, the paper (arXiv
id and equation) it implements, and the TRL 1.16 ``loss_type`` that computes the same loss where
one exists (the tests check the two agree to 1e-6).

Notation, per example: s_c = pc - rc and s_r = pr - rr are the chosen and rejected
policy-vs-reference log-ratios (of summed log-probs), Δ = s_c - s_r is the margin, z = βΔ.

    name       formula (per example)                                            TRL loss_type
    dpo        -logσ(z)                                                         sigmoid
    hinge      relu(1 - z)                                                      hinge
    ipo        (Δ' - 1/(2β))², Δ' = s_c/len_c - s_r/len_r                        ipo
    robust     [-(1-ε) logσ(z) + ε logσ(-z)] / (1 - 2ε), ε = 0.1                robust
    nca_pair   -logσ(βs_c) - ½ logσ(-βs_c) - ½ logσ(-βs_r)                      nca_pair
    bco_pair   -logσ(βs_c) - logσ(-βs_r)                                        bco_pair
    sppo_hard  (s_c - 1/(2β))² + (s_r + 1/(2β))²                                sppo_hard
    apo_zero   (1 - σ(βs_c)) + σ(βs_r)                                          apo_zero
    apo_down   σ(βs_c) + (1 - σ(z))                                             apo_down
    exo_pair   KL([σ(z), σ(-z)] ‖ [1-ε, ε]), ε = 1e-3                            exo_pair
    lrml       (1 - m)(-logσ(z)) + m e^{-z}, m = σ(z/0.05)  (DiscoPOP)          discopop
    padll      0.9 (1 - ½[Δ < 0]) (-logσ(z))                                    -
    cell       ½ e^{-z} + ½ (-logσ(z))                                          -
    pfl        pc > pr ? -logσ(z)/2 : 2 relu(1 - z)                             -
    aqfl       logistic/hinge blend gated by batch statistics of z/0.05         -
    dbaql      logistic/exponential blend gated by Var(z/0.05) over the batch   -
    aql        logistic/hinge blend gated by mean(z/0.05) over the batch        -
    mrpo       -logσ(βΔ̃), Δ̃ against the adaptive harmonic mean of K references   -

Several baselines rise as the margin rises over part of its range (squared losses, DiscoPOP's
bumps near z = 0, APO-down and NCA by design); ``Baseline.non_monotone`` says where, so that the
sandbox's "non-increasing in margin" probe can be read against them.

This module does not compile or run the sources (no ``exec`` here: the sandbox turns source into a
graph), does not train, and does not talk to TRL; it is data plus the documentation of each loss.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

__all__ = ["BASELINES", "Baseline"]


@dataclass(frozen=True)
class Baseline:
    """One baseline loss: contract source code plus where it comes from."""

    name: str  # registry key, e.g. "dpo"
    source: str  # contract code: exactly one `def loss(...)`, names in scope torch, F, math
    cite: str  # paper, arXiv id and the equation / section the source implements
    trl_loss_type: str | None  # TRL 1.16 DPOConfig.loss_type computing the same loss, if any
    formula: str  # the per-example formula in the module docstring's notation
    min_batch_size: int = 1  # smallest batch for which the loss is defined (a std over 1 is NaN)
    # Where the loss rises as the margin rises (the sandbox probes for this); None if it never does.
    non_monotone: str | None = None

    def __post_init__(self) -> None:
        body = ast.parse(self.source).body
        if len(body) != 1 or not isinstance(body[0], ast.FunctionDef) or body[0].name != "loss":
            raise ValueError(
                f"baseline {self.name!r}: the source must define exactly one function, `loss`, "
                "and nothing else (DESIGN.md section 2)"
            )
        if self.min_batch_size < 1:
            raise ValueError(f"baseline {self.name!r}: min_batch_size must be >= 1")

    @property
    def parameters(self) -> tuple[str, ...]:
        """Parameter names of the source's `loss` function, read from its AST (nothing is run)."""
        (func,) = ast.parse(self.source).body
        assert isinstance(func, ast.FunctionDef)  # checked in __post_init__
        return tuple(argument.arg for argument in func.args.args)


# ---------------------------------------------------------------------------------------------
# Sources. Shapes: every log-prob argument is (B,); `refs_*` are (K, B); `*_lengths` are (B,).
# ---------------------------------------------------------------------------------------------

_DPO = """\
def loss(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps, beta):
    chosen_logratios = policy_chosen_logps - ref_chosen_logps  # s_c, (B,)
    rejected_logratios = policy_rejected_logps - ref_rejected_logps  # s_r, (B,)
    delta = chosen_logratios - rejected_logratios  # Δ, (B,)
    # DPO, arXiv 2305.18290 Eq. 7
    return -F.logsigmoid(beta * delta)
"""

_HINGE = """\
def loss(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps, beta):
    chosen_logratios = policy_chosen_logps - ref_chosen_logps  # s_c, (B,)
    rejected_logratios = policy_rejected_logps - ref_rejected_logps  # s_r, (B,)
    delta = chosen_logratios - rejected_logratios  # Δ, (B,)
    # SLiC-HF calibration hinge (arXiv 2305.10425 Eq. 1) on reference-normalised log-ratios,
    # margin 1/β (RSO, arXiv 2309.06657)
    return torch.relu(1 - beta * delta)
"""

_IPO = """\
def loss(
    policy_chosen_logps,
    policy_rejected_logps,
    ref_chosen_logps,
    ref_rejected_logps,
    beta,
    chosen_lengths,
    rejected_lengths,
):
    chosen_logratios = policy_chosen_logps - ref_chosen_logps  # s_c, (B,)
    rejected_logratios = policy_rejected_logps - ref_rejected_logps  # s_r, (B,)
    # Averaged over completion tokens, as TRL computes IPO (token counts clamped to >= 1)
    chosen_avg = chosen_logratios / torch.clamp(chosen_lengths, min=1)  # (B,)
    rejected_avg = rejected_logratios / torch.clamp(rejected_lengths, min=1)  # (B,)
    delta = chosen_avg - rejected_avg  # Δ', (B,)
    # IPO, arXiv 2310.12036 Eq. 17, with τ = β
    return (delta - 1 / (2 * beta)) ** 2
"""

_ROBUST = """\
def loss(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps, beta):
    chosen_logratios = policy_chosen_logps - ref_chosen_logps  # s_c, (B,)
    rejected_logratios = policy_rejected_logps - ref_rejected_logps  # s_r, (B,)
    delta = chosen_logratios - rejected_logratios  # Δ, (B,)
    flip_rate = 0.1  # ε: assumed probability that a preference label is flipped
    # rDPO, arXiv 2403.00409: the DPO loss de-biased for labels flipped with probability ε
    clean = -(1 - flip_rate) * F.logsigmoid(beta * delta)
    flipped = -flip_rate * F.logsigmoid(-beta * delta)
    return (clean - flipped) / (1 - 2 * flip_rate)
"""

_NCA_PAIR = """\
def loss(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps, beta):
    chosen_rewards = beta * (policy_chosen_logps - ref_chosen_logps)  # β s_c, (B,)
    rejected_rewards = beta * (policy_rejected_logps - ref_rejected_logps)  # β s_r, (B,)
    # NCA for pairwise data, arXiv 2402.05369 (NCA loss with K = 2)
    return (
        -F.logsigmoid(chosen_rewards)
        - 0.5 * F.logsigmoid(-chosen_rewards)
        - 0.5 * F.logsigmoid(-rejected_rewards)
    )
"""

_BCO_PAIR = """\
def loss(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps, beta):
    chosen_rewards = beta * (policy_chosen_logps - ref_chosen_logps)  # β s_c, (B,)
    rejected_rewards = beta * (policy_rejected_logps - ref_rejected_logps)  # β s_r, (B,)
    # BCO, arXiv 2404.04656, on paired data and without the running reward shift δ
    return -F.logsigmoid(chosen_rewards) - F.logsigmoid(-rejected_rewards)
"""

_SPPO_HARD = """\
def loss(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps, beta):
    chosen_logratios = policy_chosen_logps - ref_chosen_logps  # s_c, (B,)
    rejected_logratios = policy_rejected_logps - ref_rejected_logps  # s_r, (B,)
    # SPPO, arXiv 2405.00675 Eq. 4.7 with hard probabilities P(winner) = 1, P(loser) = 0
    winner_error = (chosen_logratios - 0.5 / beta) ** 2
    loser_error = (rejected_logratios + 0.5 / beta) ** 2
    return winner_error + loser_error
"""

_APO_ZERO = """\
def loss(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps, beta):
    chosen_logratios = policy_chosen_logps - ref_chosen_logps  # s_c, (B,)
    rejected_logratios = policy_rejected_logps - ref_rejected_logps  # s_r, (B,)
    # APO-zero, arXiv 2408.06266 Eq. 7: raise the chosen, lower the rejected likelihood
    return (1 - torch.sigmoid(beta * chosen_logratios)) + torch.sigmoid(beta * rejected_logratios)
"""

_APO_DOWN = """\
def loss(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps, beta):
    chosen_logratios = policy_chosen_logps - ref_chosen_logps  # s_c, (B,)
    rejected_logratios = policy_rejected_logps - ref_rejected_logps  # s_r, (B,)
    delta = chosen_logratios - rejected_logratios  # Δ, (B,)
    # APO-down, arXiv 2408.06266 Eq. 8: lower the chosen likelihood, the rejected one more
    return torch.sigmoid(beta * chosen_logratios) + (1 - torch.sigmoid(beta * delta))
"""

_EXO_PAIR = """\
def loss(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps, beta):
    chosen_logratios = policy_chosen_logps - ref_chosen_logps  # s_c, (B,)
    rejected_logratios = policy_rejected_logps - ref_rejected_logps  # s_r, (B,)
    delta = chosen_logratios - rejected_logratios  # Δ, (B,)
    smoothing = 1e-3  # ε of the target [1 - ε, ε]; the value the EXO paper recommends
    # EXO-pref, arXiv 2402.00856 Eq. 16: KL(p_fθ ‖ p_rh) over {chosen, rejected}
    q_chosen = torch.sigmoid(beta * delta)
    q_rejected = torch.sigmoid(-beta * delta)
    return q_chosen * (F.logsigmoid(beta * delta) - math.log1p(-smoothing)) + q_rejected * (
        F.logsigmoid(-beta * delta) - math.log(smoothing)
    )
"""

_LRML = """\
def loss(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps, beta):
    chosen_logratios = policy_chosen_logps - ref_chosen_logps  # s_c, (B,)
    rejected_logratios = policy_rejected_logps - ref_rejected_logps  # s_r, (B,)
    logits = beta * (chosen_logratios - rejected_logratios)  # z = βΔ, (B,)
    tau = 0.05
    # DiscoPOP / LRML, arXiv 2406.08414 Eq. 5: blend logistic and exponential losses
    modulation = torch.sigmoid(logits / tau)
    return (1 - modulation) * -F.logsigmoid(logits) + modulation * torch.exp(-logits)
"""

_PADLL = """\
def loss(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps, beta):
    chosen_logratios = policy_chosen_logps - ref_chosen_logps  # s_c, (B,)
    rejected_logratios = policy_rejected_logps - ref_rejected_logps  # s_r, (B,)
    delta = chosen_logratios - rejected_logratios  # Δ, (B,)
    # PADLL, arXiv 2406.08414 appendix: base decay 0.9, halved on mismatched pairs (Δ < 0)
    logistic = -F.logsigmoid(beta * delta)
    return torch.where(delta < 0, 0.45 * logistic, 0.9 * logistic)
"""

_CELL = """\
def loss(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps, beta):
    chosen_logratios = policy_chosen_logps - ref_chosen_logps  # s_c, (B,)
    rejected_logratios = policy_rejected_logps - ref_rejected_logps  # s_r, (B,)
    logits = beta * (chosen_logratios - rejected_logratios)  # z = βΔ, (B,)
    # CELL, arXiv 2406.08414 appendix: equal mix (α = 0.5) of exponential and logistic losses
    return 0.5 * torch.exp(-logits) + 0.5 * -F.logsigmoid(logits)
"""

_PFL = """\
def loss(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps, beta):
    chosen_logratios = policy_chosen_logps - ref_chosen_logps  # s_c, (B,)
    rejected_logratios = policy_rejected_logps - ref_rejected_logps  # s_r, (B,)
    logits = beta * (chosen_logratios - rejected_logratios)  # z = βΔ, (B,)
    focus_scale = 2.0
    # PFL, arXiv 2406.08414 appendix: "correct" means the policy alone prefers the chosen answer
    return torch.where(
        policy_chosen_logps > policy_rejected_logps,
        -F.logsigmoid(logits) / focus_scale,
        torch.relu(1 - logits) * focus_scale,
    )
"""

_AQFL = """\
def loss(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps, beta):
    chosen_logratios = policy_chosen_logps - ref_chosen_logps  # s_c, (B,)
    rejected_logratios = policy_rejected_logps - ref_rejected_logps  # s_r, (B,)
    logits = beta * (chosen_logratios - rejected_logratios)  # z = βΔ, (B,)
    # AQFL, arXiv 2406.08414 appendix; batch statistics of z / 0.05 (std needs B >= 2)
    scaled = logits / 0.05  # (B,)
    quantile = scaled.std() * torch.sigmoid(-scaled).mean()  # 0-dim
    quantile = quantile + 0.05 * (torch.sigmoid(scaled.mean()) - quantile)
    blend = torch.sigmoid(0.1 * torch.abs(scaled - quantile))  # (B,), in [0.5, 1)
    return blend * -F.logsigmoid(logits) + (1 - blend) * torch.relu(1 - logits)
"""

_DBAQL = """\
def loss(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps, beta):
    chosen_logratios = policy_chosen_logps - ref_chosen_logps  # s_c, (B,)
    rejected_logratios = policy_rejected_logps - ref_rejected_logps  # s_r, (B,)
    logits = beta * (chosen_logratios - rejected_logratios)  # z = βΔ, (B,)
    temperature = 0.9
    # DBAQL, arXiv 2406.08414 appendix; blend set by the batch variance of z / 0.05 (needs B >= 2)
    blend = torch.sigmoid((logits / 0.05).var())  # 0-dim
    logistic = -F.logsigmoid(logits / temperature)
    exponential = torch.exp(-logits * temperature)
    return blend * logistic + (1 - blend) * exponential
"""

_AQL = """\
def loss(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps, beta):
    chosen_logratios = policy_chosen_logps - ref_chosen_logps  # s_c, (B,)
    rejected_logratios = policy_rejected_logps - ref_rejected_logps  # s_r, (B,)
    logits = beta * (chosen_logratios - rejected_logratios)  # z = βΔ, (B,)
    # AQL, arXiv 2406.08414 appendix; a moving quantile set by the batch mean of z / 0.05
    scaled = logits / 0.05  # (B,)
    moving_quantile = 0.5 + 0.01 * (torch.sigmoid(scaled.mean()) - 0.5)  # 0-dim
    weight = torch.sigmoid(-(scaled - moving_quantile))  # (B,)
    return weight * -F.logsigmoid(logits) + (1 - weight) * torch.relu(1 - logits)
"""

# MRPO (arXiv 2405.16388). By Jensen, Σ_k α_k KL(π ‖ π_k) <= KL(π ‖ π̃) with π̃ = (Σ_k α_k/π_k)^-1,
# the weighted harmonic mean of the references, so the multi-reference objective is bounded below
# by a single-reference one whose DPO form uses π̃ as the reference. ARWC sets α_k per example from
# reference k's confidence |log π_k(y_w) - log π_k(y_l)|; CTRO clips every reference's log-prob to
# within ε·|log π_0| of the primary one's, with ε split between chosen and rejected by their mean
# reference log-prob magnitudes. The paper's text was not reachable from here (only its abstract),
# so the details follow the authors' K = 2 code. One difference, kept on purpose: that code
# computes log π̃ = log π_1 + log π_2 - log(α π_1 + (1 - α) π_2) with α = conf_1 / (conf_1 + conf_2),
# which puts reference 1's confidence on 1/π_2, i.e. the bound's weights swapped. This source
# weights each reference by its own confidence, as the bound reads; it reduces to DPO for K = 1.
_MRPO = """\
def loss(
    policy_chosen_logps,
    policy_rejected_logps,
    ref_chosen_logps,
    ref_rejected_logps,
    beta,
    refs_chosen_logps,
    refs_rejected_logps,
):
    # refs_*: (K, B); row 0 is the primary reference (the model the policy starts from).
    # The combined ref_*_logps the campaign also passes are not used: MRPO combines its own.
    clip_rate = 0.1  # ε of CTRO
    # ARWC: per-example weight of each reference ∝ its confidence |log π_k(y_w) - log π_k(y_l)|
    confidence = torch.abs(refs_chosen_logps - refs_rejected_logps) + 1e-6  # (K, B)
    log_weights = torch.log(confidence / confidence.sum(dim=0, keepdim=True))  # log α_k, (K, B)
    # CTRO: split ε between chosen and rejected by their mean reference log-prob magnitudes
    mean_chosen = torch.abs(refs_chosen_logps.mean(dim=0))  # (B,)
    mean_rejected = torch.abs(refs_rejected_logps.mean(dim=0))  # (B,)
    share = mean_chosen / (mean_chosen + mean_rejected + 1e-6)  # (B,)
    clip_chosen = clip_rate * share
    clip_rejected = clip_rate * (1 - share)
    # Keep each reference within ε|log π_0| of the primary one (log-probs are <= 0)
    primary_chosen = refs_chosen_logps[0]  # (B,)
    primary_rejected = refs_rejected_logps[0]  # (B,)
    clipped_chosen = torch.minimum(
        torch.maximum(refs_chosen_logps, primary_chosen * (1 + clip_chosen)),
        primary_chosen * (1 - clip_chosen),
    )  # (K, B)
    clipped_rejected = torch.minimum(
        torch.maximum(refs_rejected_logps, primary_rejected * (1 + clip_rejected)),
        primary_rejected * (1 - clip_rejected),
    )  # (K, B)
    # Weighted harmonic mean of the reference probabilities: log π̃ = -log Σ_k α_k / π_k
    combined_chosen = -torch.logsumexp(log_weights - clipped_chosen, dim=0)  # (B,)
    combined_rejected = -torch.logsumexp(log_weights - clipped_rejected, dim=0)  # (B,)
    delta = (policy_chosen_logps - combined_chosen) - (policy_rejected_logps - combined_rejected)
    return -F.logsigmoid(beta * delta)
"""

_DISCOPOP_APPENDIX = (
    "arXiv 2406.08414 (Lu et al. 2024, DiscoPOP), appendix on the discovered objective functions; "
    "formula as in the authors' code, luchris429/DiscoPOP src/alignment/gpo.py "
)

_ENTRIES: tuple[Baseline, ...] = (
    Baseline(
        name="dpo",
        source=_DPO,
        cite="Rafailov et al. 2023, Direct Preference Optimization, arXiv 2305.18290, Eq. 7",
        trl_loss_type="sigmoid",
        formula="-logσ(βΔ)",
    ),
    Baseline(
        name="hinge",
        source=_HINGE,
        cite=(
            "Zhao et al. 2023, SLiC-HF, arXiv 2305.10425 (rank-calibration hinge loss), applied "
            "to reference-normalised log-ratios with margin 1/β as in Liu et al. 2023, RSO, "
            "arXiv 2309.06657 (hinge-norm loss)"
        ),
        trl_loss_type="hinge",
        formula="relu(1 - βΔ)",
    ),
    Baseline(
        name="ipo",
        source=_IPO,
        cite=(
            "Azar et al. 2023, A General Theoretical Paradigm to Understand Learning from Human "
            "Preferences (IPO), arXiv 2310.12036, Eq. 17; log-ratios averaged over completion "
            "tokens as TRL does"
        ),
        trl_loss_type="ipo",
        formula="(Δ' - 1/(2β))², Δ' = s_c/max(len_c, 1) - s_r/max(len_r, 1)",
        non_monotone="squared loss: rises once Δ' > 1/(2β) (its minimum)",
    ),
    Baseline(
        name="robust",
        source=_ROBUST,
        cite=(
            "Chowdhury et al. 2024, Provably Robust DPO, arXiv 2403.00409 (the rDPO loss, "
            "unbiased under label-flip rate ε; not conservative DPO's label smoothing); ε = 0.1, "
            "the value TRL's docs give as the paper's typical one"
        ),
        trl_loss_type="robust",
        formula="[-(1-ε) logσ(βΔ) + ε logσ(-βΔ)] / (1 - 2ε), ε = 0.1",
    ),
    Baseline(
        name="nca_pair",
        source=_NCA_PAIR,
        cite=(
            "Chen et al. 2024, Noise Contrastive Alignment of Language Models with Explicit "
            "Rewards, arXiv 2402.05369, NCA loss for K = 2 responses"
        ),
        trl_loss_type="nca_pair",
        formula="-logσ(βs_c) - ½ logσ(-βs_c) - ½ logσ(-βs_r)",
        non_monotone=(
            "rises in s_c once βs_c > ln 2 (the ½ logσ(-βs_c) term pulls the chosen reward back); "
            "non-increasing when the margin grows through s_r"
        ),
    ),
    Baseline(
        name="bco_pair",
        source=_BCO_PAIR,
        cite=(
            "Jung et al. 2024, Binary Classifier Optimization for LLM Alignment, "
            "arXiv 2404.04656, BCO loss on pairs, without the running reward shift δ"
        ),
        trl_loss_type="bco_pair",
        formula="-logσ(βs_c) - logσ(-βs_r)",
    ),
    Baseline(
        name="sppo_hard",
        source=_SPPO_HARD,
        cite=(
            "Wu et al. 2024, Self-Play Preference Optimization, arXiv 2405.00675, Eq. 4.7 with "
            "hard probabilities (P = 1 for the winner, 0 for the loser)"
        ),
        trl_loss_type="sppo_hard",
        formula="(s_c - 1/(2β))² + (s_r + 1/(2β))²",
        non_monotone="squared loss: rises once s_c > 1/(2β) or s_r < -1/(2β)",
    ),
    Baseline(
        name="apo_zero",
        source=_APO_ZERO,
        cite=(
            "D'Oosterlinck et al. 2024, Anchored Preference Optimization, arXiv 2408.06266, "
            "Eq. 7 (APO-zero)"
        ),
        trl_loss_type="apo_zero",
        formula="(1 - σ(βs_c)) + σ(βs_r)",
    ),
    Baseline(
        name="apo_down",
        source=_APO_DOWN,
        cite=(
            "D'Oosterlinck et al. 2024, Anchored Preference Optimization, arXiv 2408.06266, "
            "Eq. 8 (APO-down)"
        ),
        trl_loss_type="apo_down",
        formula="σ(βs_c) + (1 - σ(βΔ))",
        non_monotone=(
            "by design it lowers the chosen likelihood: rises as s_c grows wherever |s_c| < |Δ| "
            "(σ'(βs_c) > σ'(βΔ)), e.g. for every positive margin when s_r < 0; non-increasing "
            "when the margin grows through s_r"
        ),
    ),
    Baseline(
        name="exo_pair",
        source=_EXO_PAIR,
        cite=(
            "Ji et al. 2024, Towards Efficient Exact Optimization of Language Model Alignment "
            "(EXO), arXiv 2402.00856, Eq. 16 (EXO-pref, K = 2); ε = 1e-3 as the paper recommends"
        ),
        trl_loss_type="exo_pair",
        formula="σ(z)(logσ(z) - log(1-ε)) + σ(-z)(logσ(-z) - log ε), z = βΔ, ε = 1e-3",
        non_monotone="a KL to the target [1-ε, ε]: rises once βΔ > log((1-ε)/ε) ≈ 6.91",
    ),
    Baseline(
        name="lrml",
        source=_LRML,
        cite=(
            "Lu et al. 2024, Discovering Preference Optimization Algorithms with and for LLMs "
            "(DiscoPOP), arXiv 2406.08414, Eq. 5 (LRML), τ = 0.05"
        ),
        trl_loss_type="discopop",
        formula="(1 - m)(-logσ(z)) + m e^{-z}, m = σ(z/τ), z = βΔ, τ = 0.05",
        non_monotone=(
            "rises for z = βΔ in about (-0.12, 0.07), where the σ(z/τ) gate switches from the "
            "logistic to the exponential branch (the non-convex region the DiscoPOP paper notes)"
        ),
    ),
    Baseline(
        name="padll",
        source=_PADLL,
        cite=_DISCOPOP_APPENDIX + "(performance_adaptive_decay_logistic_loss)",
        trl_loss_type=None,
        formula="0.9 (1 - ½[Δ < 0]) (-logσ(βΔ))",
        non_monotone=(
            "jumps up at Δ = 0 (weight 0.45 -> 0.9, loss 0.31 -> 0.62): for βΔ in [0, ~0.88) "
            "the loss is above its value just below Δ = 0"
        ),
    ),
    Baseline(
        name="cell",
        source=_CELL,
        cite=_DISCOPOP_APPENDIX + "(combined_exp_logistic_loss)",
        trl_loss_type=None,
        formula="½ e^{-βΔ} + ½ (-logσ(βΔ))",
    ),
    Baseline(
        name="pfl",
        source=_PFL,
        cite=_DISCOPOP_APPENDIX + "(policy_focused_loss)",
        trl_loss_type=None,
        formula="pc > pr ? -logσ(βΔ)/2 : 2 relu(1 - βΔ)",
        non_monotone=(
            "the branch depends on pc > pr, not on Δ: when pc crosses pr while βΔ > ~0.92 the "
            "loss jumps up from 2 relu(1 - βΔ) (0 for βΔ >= 1) to -logσ(βΔ)/2"
        ),
    ),
    Baseline(
        name="aqfl",
        source=_AQFL,
        cite=_DISCOPOP_APPENDIX + "(adaptive_quantile_feedback_loss)",
        trl_loss_type=None,
        formula=(
            "w (-logσ(z)) + (1-w) relu(1-z), w = σ(0.1 |z/0.05 - q|), "
            "q = q0 + 0.05 (σ(mean(z/0.05)) - q0), q0 = std(z/0.05) mean(σ(-z/0.05))"
        ),
        min_batch_size=2,
        non_monotone=(
            "in some batches it rises over a short window near z = 0 (βΔ in about (-0.03, 0.08) "
            "for a batch of 2 at β = 1), where the batch-dependent blend weight w falls towards "
            "½ and shifts weight to the hinge term, which is the larger one there"
        ),
    ),
    Baseline(
        name="dbaql",
        source=_DBAQL,
        cite=_DISCOPOP_APPENDIX + "(dynamic_blended_adaptive_quantile_loss)",
        trl_loss_type=None,
        formula="w (-logσ(z/0.9)) + (1-w) e^{-0.9 z}, w = σ(Var(z/0.05))",
        min_batch_size=2,
        non_monotone=(
            "through the batch: moving one margin towards the others lowers Var(z/0.05), which "
            "moves weight onto the (larger) exponential term, so in small batches that example's "
            "loss rises over a short window (B = 2: βΔ ≈ 0.10-0.20 at β = 0.05, 4.3-4.4 at β = 1); "
            "for fixed batch statistics both terms decrease"
        ),
    ),
    Baseline(
        name="aql",
        source=_AQL,
        cite=_DISCOPOP_APPENDIX + "(adaptive_quantile_loss)",
        trl_loss_type=None,
        formula=(
            "w (-logσ(z)) + (1-w) relu(1-z), w = σ(-(z/0.05 - m)), "
            "m = 0.5 + 0.01 (σ(mean(z/0.05)) - 0.5)"
        ),
        non_monotone=(
            "rises for z = βΔ in about (-0.09, 0.09): the weight moves from the logistic loss "
            "(0.69 at z = 0) to the hinge 1 - z, which is larger there"
        ),
    ),
    Baseline(
        name="mrpo",
        source=_MRPO,
        cite=(
            "Le et al. 2024, Multi-Reference Preference Optimization for LLMs, arXiv 2405.16388: "
            "DPO against the weighted harmonic mean of K references (the maximiser of a lower "
            "bound of the multi-KL objective), with CTRO clipping (ε = 0.1) and ARWC adaptive "
            "weights, as in the authors' code, thaihungle/MRPO "
            "src/llmtuner/train/dpo/trainer_mref.py (K = 2), generalised to K; equation numbers "
            "not checked against the paper text (see the note above _MRPO)"
        ),
        trl_loss_type=None,
        formula=(
            "-logσ(β((pc - log π̃_c) - (pr - log π̃_r))), log π̃ = -log Σ_k α_k / π_k(clipped), "
            "α_k ∝ |log π_k(y_w) - log π_k(y_l)|"
        ),
    ),
)

BASELINES: dict[str, Baseline] = {baseline.name: baseline for baseline in _ENTRIES}
