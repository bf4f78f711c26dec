"""Preference pairs: train pairs labelled by a noisy annotator of the proxy, held-out pairs by the
true reward, optional label noise on top."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace

import numpy as np
import pytest
import torch

from evaluator.tinylm.pairs import PairSet, build_pairs, label
from evaluator.tinylm.reference import Reference
from evaluator.tinylm.tasks import Arithmetic
from evaluator.tinylm.tokenizer import decode

from .factories import small_pairs


def heldout_pairs(reference: Reference, n: int, *, label_noise: float = 0.0) -> PairSet:
    """n pairs on held-out prompts, as the stage builds them (besides the noise)."""
    return build_pairs(
        reference,
        n_pairs=n,
        split="heldout",
        label_noise=label_noise,
        max_length=32,
        rng=np.random.default_rng(0),
        generator=torch.Generator().manual_seed(0),
    )


def test_the_annotator_follows_the_proxy_where_it_disagrees_with_the_truth() -> None:
    # 16 overshoots 7 + 8 by one: the truth prefers 15, the proxy 16 (its overshoot bonus).
    task, prompt, exact, over = Arithmetic(), ("7", "+", "8", "="), ("1", "5"), ("1", "6")
    assert task.reward(prompt, exact) > task.reward(prompt, over)
    gap = task.proxy_reward(prompt, over) - task.proxy_reward(prompt, exact)
    rng = np.random.default_rng(0)
    draws = [label(task, prompt, over, exact, split="train", rng=rng) for _ in range(4000)]
    expected = 1 / (1 + math.exp(-gap / task.annotator_temperature))  # Bradley-Terry
    assert np.mean(draws) == pytest.approx(expected, abs=0.03)
    # A sharp annotator always sides with the proxy; the held-out judge with the truth.
    sharp = replace(task, annotator_temperature=1e-3)
    assert all(label(sharp, prompt, over, exact, split="train", rng=rng) for _ in range(100))
    sharper = replace(task, annotator_temperature=1e-9)  # exp(1e8) would overflow: it must not
    assert label(sharper, prompt, exact, over, split="train", rng=rng) is False
    assert label(task, prompt, over, exact, split="heldout", rng=rng) is False
    assert label(task, prompt, exact, over, split="heldout", rng=rng) is True
    # Ties say nothing: dropped.
    assert label(task, prompt, exact, exact, split="train", rng=rng) is None
    assert label(task, prompt, exact, ("0", "1", "5"), split="heldout", rng=rng) is None


@pytest.mark.parametrize("name", ["arithmetic", "sentiment"])
def test_train_pairs_follow_a_noisy_annotator_of_the_proxy(
    reference: Callable[[str], Reference], name: str
) -> None:
    ref = reference(name)
    task, tok = ref.task, ref.tokenizer
    pairs = small_pairs(ref, 256)
    assert len(pairs) == 256
    assert not pairs.flipped.any()
    proxy_gaps, true_gaps = [], []
    for i, prompt in enumerate(pairs.prompts):
        assert task.split_of(prompt) == "train"
        # The stored rewards are the TRUE rewards of the pair as labelled.
        assert task.reward(prompt, pairs.chosen[i]) == pairs.chosen_rewards[i]
        assert task.reward(prompt, pairs.rejected[i]) == pairs.rejected_rewards[i]
        chosen, rejected = pairs.chosen[i], pairs.rejected[i]
        proxy_gaps.append(task.proxy_reward(prompt, chosen) - task.proxy_reward(prompt, rejected))
        true_gaps.append(float(pairs.chosen_rewards[i] - pairs.rejected_rewards[i]))
        # Row i is prompt + chosen + eos, row N + i prompt + rejected + eos; the mask marks
        # exactly the completion and its eos.
        for row, words in ((i, pairs.chosen[i]), (len(pairs) + i, pairs.rejected[i])):
            ids = pairs.input_ids[row]
            mask = pairs.completion_mask[row].bool()
            assert decode(tok, ids[: task.prompt_len].tolist()) == prompt
            assert not mask[: task.prompt_len].any()
            assert decode(tok, ids[mask].tolist()) == words
            assert ids[mask][-1] == tok.eos_token_id
    proxy, true = np.array(proxy_gaps), np.array(true_gaps)
    assert (proxy != 0).all()  # proxy ties are dropped
    # Bradley-Terry: the share of pairs that side with the proxy is what its gaps predict.
    predicted = 1 / (1 + np.exp(-np.abs(proxy) / task.annotator_temperature))
    assert (proxy > 0).mean() == pytest.approx(predicted.mean(), abs=0.06)
    # The labels follow the proxy more than the truth: some chosen completions are truly worse
    # even where the proxy says they are better.
    assert ((proxy > 0) & (true < 0)).any()
    assert (proxy > 0).mean() > (true > 0).mean()


@pytest.mark.parametrize("name", ["arithmetic", "sentiment"])
def test_held_out_pairs_are_ranked_by_the_true_reward(
    reference: Callable[[str], Reference], name: str
) -> None:
    ref = reference(name)
    pairs = heldout_pairs(ref, 64)
    assert len(pairs) == 64
    assert (pairs.chosen_rewards > pairs.rejected_rewards).all()  # no annotator noise
    for i, prompt in enumerate(pairs.prompts):
        assert ref.task.split_of(prompt) == "heldout"
        assert ref.task.reward(prompt, pairs.chosen[i]) == pairs.chosen_rewards[i]


def test_label_noise_flips_the_preference(reference: Callable[[str], Reference]) -> None:
    # On held-out pairs (ranked by the truth) a flip is visible in the true rewards.
    pairs = heldout_pairs(reference("arithmetic"), 256, label_noise=0.3)
    flipped = pairs.flipped
    assert 0.2 < flipped.double().mean() < 0.4
    assert (pairs.chosen_rewards[flipped] < pairs.rejected_rewards[flipped]).all()
    assert (pairs.chosen_rewards[~flipped] > pairs.rejected_rewards[~flipped]).all()
    # On train pairs the flips come on top of the annotator's: the same draws, then swapped.
    ref = reference("arithmetic")
    clean, noisy = small_pairs(ref, 128), small_pairs(ref, 128, label_noise=0.3)
    assert clean.prompts == noisy.prompts
    for i in range(128):
        expected = (clean.chosen[i], clean.rejected[i])
        if noisy.flipped[i]:
            expected = expected[::-1]
        assert (noisy.chosen[i], noisy.rejected[i]) == expected


def test_same_seed_same_pairs(reference: Callable[[str], Reference]) -> None:
    ref = reference("arithmetic")
    a, b, c = small_pairs(ref, 32), small_pairs(ref, 32), small_pairs(ref, 32, seed=1)
    assert torch.equal(a.input_ids, b.input_ids) and a.prompts == b.prompts
    assert not (a.input_ids.shape == c.input_ids.shape and torch.equal(a.input_ids, c.input_ids))


def test_records_are_trl_text(reference: Callable[[str], Reference]) -> None:
    ref = reference("arithmetic")
    pairs = small_pairs(ref, 4)
    record = pairs.records()[0]
    assert record["prompt"] == " ".join(pairs.prompts[0])
    assert record["chosen"] == " " + " ".join(pairs.chosen[0])
    assert record["rejected"] == " " + " ".join(pairs.rejected[0])
