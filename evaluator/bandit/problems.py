"""Tabular preference problems with a known optimum, the desiderata of arXiv 2407.09072 made exact.

A problem has P prompts and K responses per prompt, a reference policy pi_ref(y|x), true rewards
r(x, y), and Bradley-Terry preference pairs sampled from the reference, each labelled by several
independent votes (with optional label noise).
Some prompts have no preference data: how far a loss moves them is the preservation desideratum. A
family may parameterise the policy by features shared across prompts (logits = ref + phi(x, y) . w),
so that fitting the prompts with data moves the ones without, and the KL constraint binds.

Because everything is a table, every metric is exact (no sampling), and so is the optimum of the
KL-regularised objective E_pi[r] - beta KL(pi || pi_ref):
pi*_beta(y|x) ∝ pi_ref(y|x) exp(r(x,y)/beta) (the closed form DPO is derived from, arXiv 2305.18290
Eq. 4). Sweeping beta traces the optimal
reward-vs-KL frontier that candidates are measured against.

This module makes problems and data; it does not train (see `train`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch


@dataclass(frozen=True)
class BanditFamily:
    """The shape of one family of problems."""

    name: str
    prompts: int  # P
    responses: int  # K per prompt
    pairs_per_prompt: int  # preference pairs sampled for each prompt that has data
    unseen_fraction: float  # fraction of prompts with no preference data (preservation)
    label_noise: float = 0.0  # probability that a pair's label is flipped
    # Independent Bradley-Terry votes per pair, one row each. With several votes a pair's empirical
    # preference is rarely 0 or 1, so DPO's optimum is finite (margin logit(p)/beta) as in the
    # population case, instead of every margin running to infinity.
    votes_per_pair: int = 4
    features: int | None = None  # D: shared-feature policy; None: one free logit per (x, y)
    reward_scale: float = 2.0  # std of true rewards; sharper rewards make labels less noisy
    max_length: int = 16  # response lengths (token counts) are drawn from 1..max_length


FAMILIES: dict[str, BanditFamily] = {
    family.name: family
    for family in (
        BanditFamily("tabular", prompts=48, responses=8, pairs_per_prompt=8, unseen_fraction=0.25),
        BanditFamily(
            "many_responses", prompts=12, responses=48, pairs_per_prompt=24, unseen_fraction=0.25
        ),
        BanditFamily(
            "noisy",
            prompts=48,
            responses=8,
            pairs_per_prompt=8,
            unseen_fraction=0.25,
            label_noise=0.25,
        ),
        BanditFamily(
            "shared_features",
            prompts=48,
            responses=8,
            pairs_per_prompt=8,
            unseen_fraction=0.5,
            features=6,
        ),
    )
}


@dataclass(frozen=True)
class BanditProblem:
    """One sampled problem and its preference data. N = number of pairs."""

    family: BanditFamily
    ref_logits: torch.Tensor  # (P, K) float64
    rewards: torch.Tensor  # (P, K) true rewards
    features: torch.Tensor | None  # (P, K, D) shared features, or None for a tabular policy
    lengths: torch.Tensor  # (P, K) token count of each response
    seen: torch.Tensor  # (P,) bool, prompts with preference data
    pair_prompt: torch.Tensor  # (N,) prompt of each labelled pair (one row per vote)
    pair_chosen: torch.Tensor  # (N,) chosen response index
    pair_rejected: torch.Tensor  # (N,) rejected response index

    def flip_labels(self, fraction: float, rng: np.random.Generator) -> BanditProblem:
        """The same pairs with a further `fraction` of labels flipped (the noise desideratum)."""
        flip = torch.from_numpy(rng.random(self.pair_prompt.shape[0]) < fraction)
        chosen = torch.where(flip, self.pair_rejected, self.pair_chosen)
        rejected = torch.where(flip, self.pair_chosen, self.pair_rejected)
        return replace(self, pair_chosen=chosen, pair_rejected=rejected)


def make_problem(family: BanditFamily, rng: np.random.Generator) -> BanditProblem:
    """Sample a problem of `family` and its preference pairs from `rng`."""
    p, k = family.prompts, family.responses
    ref_logits = rng.normal(0.0, 1.0, size=(p, k))
    rewards = rng.normal(0.0, family.reward_scale, size=(p, k))
    features = None
    if family.features is not None:
        phi = rng.normal(0.0, 1.0, size=(p, k, family.features))
        # Rewards mostly explained by the shared features (plus a part they cannot express), so
        # what is learnt on prompts with data can transfer to, or damage, the prompts without.
        direction = rng.normal(0.0, 1.0, size=family.features) / np.sqrt(family.features)
        rewards = family.reward_scale * (0.8 * phi @ direction + 0.6 * rng.normal(size=(p, k)))
        features = torch.from_numpy(phi)
    lengths = rng.integers(1, family.max_length + 1, size=(p, k))
    seen = np.ones(p, dtype=bool)
    seen[rng.permutation(p)[: round(family.unseen_fraction * p)]] = False

    ref_probs = np.exp(ref_logits - ref_logits.max(axis=1, keepdims=True))
    ref_probs /= ref_probs.sum(axis=1, keepdims=True)
    prompts, first, second = [], [], []
    for x in np.flatnonzero(seen):
        # Two distinct responses drawn from the reference, as preference data usually is.
        for _ in range(family.pairs_per_prompt):
            y1, y2 = rng.choice(k, size=2, replace=False, p=ref_probs[x])
            prompts.append(x)
            first.append(y1)
            second.append(y2)
    votes = family.votes_per_pair
    prompt_idx = np.repeat(np.asarray(prompts), votes)
    y1, y2 = np.repeat(np.asarray(first), votes), np.repeat(np.asarray(second), votes)
    # Bradley-Terry labels: P(y1 > y2) = sigmoid(r1 - r2), then label noise flips some.
    p_first = 1.0 / (1.0 + np.exp(-(rewards[prompt_idx, y1] - rewards[prompt_idx, y2])))
    first_wins = rng.random(len(prompt_idx)) < p_first
    first_wins ^= rng.random(len(prompt_idx)) < family.label_noise
    chosen = np.where(first_wins, y1, y2)
    rejected = np.where(first_wins, y2, y1)
    return BanditProblem(
        family=family,
        ref_logits=torch.from_numpy(ref_logits),
        rewards=torch.from_numpy(rewards),
        features=features,
        lengths=torch.from_numpy(lengths).to(torch.float64),
        seen=torch.from_numpy(seen),
        pair_prompt=torch.from_numpy(prompt_idx),
        pair_chosen=torch.from_numpy(chosen),
        pair_rejected=torch.from_numpy(rejected),
    )


def optimal_policy(problem: BanditProblem, beta: float) -> torch.Tensor:
    """log pi*_beta (P, K): the exact maximiser of E[r] - beta KL(pi || pi_ref), per prompt."""
    return torch.log_softmax(problem.ref_logits + problem.rewards / beta, dim=-1)
