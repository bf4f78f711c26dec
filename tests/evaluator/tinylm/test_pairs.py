"""Preference pairs: reference samples ranked by the true reward, with optional label noise."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from evaluator.tinylm.reference import Reference
from evaluator.tinylm.tokenizer import decode

from .factories import small_pairs


@pytest.mark.parametrize("name", ["arithmetic", "sentiment"])
def test_pairs_are_ranked_by_the_true_reward(
    reference: Callable[[str], Reference], name: str
) -> None:
    ref = reference(name)
    task, tok = ref.task, ref.tokenizer
    pairs = small_pairs(ref, 64)
    assert len(pairs) == 64
    assert (pairs.chosen_rewards > pairs.rejected_rewards).all()
    assert not pairs.flipped.any()
    for i, prompt in enumerate(pairs.prompts):
        assert task.split_of(prompt) == "train"
        assert task.reward(prompt, pairs.chosen[i]) == pairs.chosen_rewards[i]
        assert task.reward(prompt, pairs.rejected[i]) == pairs.rejected_rewards[i]
        # Row i is prompt + chosen + eos, row N + i prompt + rejected + eos; the mask marks
        # exactly the completion and its eos.
        for row, words in ((i, pairs.chosen[i]), (len(pairs) + i, pairs.rejected[i])):
            ids = pairs.input_ids[row]
            mask = pairs.completion_mask[row].bool()
            assert decode(tok, ids[: task.prompt_len].tolist()) == prompt
            assert not mask[: task.prompt_len].any()
            assert decode(tok, ids[mask].tolist()) == words
            assert ids[mask][-1] == tok.eos_token_id


def test_label_noise_flips_the_preference(reference: Callable[[str], Reference]) -> None:
    ref = reference("arithmetic")
    pairs = small_pairs(ref, 256, label_noise=0.3)
    flipped = pairs.flipped
    assert 0.2 < flipped.double().mean() < 0.4
    assert (pairs.chosen_rewards[flipped] < pairs.rejected_rewards[flipped]).all()
    assert (pairs.chosen_rewards[~flipped] > pairs.rejected_rewards[~flipped]).all()


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
