"""Task families: rewards on hand-made examples, splits, demonstrators, the registry."""

from __future__ import annotations

import numpy as np
import pytest

from evaluator.tinylm.tasks import (
    HELD_OUT_TASKS,
    PUBLIC_TASKS,
    TASKS,
    Arithmetic,
    Sentiment,
    Sorting,
    get_task,
)


def test_arithmetic_reward() -> None:
    task = Arithmetic()
    prompt = ("7", "+", "8", "=")
    assert task.reward(prompt, ("1", "5")) == 1.0
    assert task.reward(prompt, ("0", "1", "5")) == 1.0  # leading zeros: the value counts
    assert task.reward(prompt, ("1", "6")) == 0.75  # off by one
    assert task.reward(prompt, ("1", "2")) == 0.25  # off by three
    assert task.reward(prompt, ("1", "1")) == 0.0  # off by four: beyond max_offset
    assert task.reward(prompt, ()) == 0.0
    assert task.reward(prompt, ("1", "+")) == 0.0  # not a number


def test_sorting_reward() -> None:
    task = Sorting()
    prompt = ("3", "1", "2", "1", ":")
    assert task.reward(prompt, ("1", "1", "2", "3")) == 1.0
    assert task.reward(prompt, ("1", "2", "1", "3")) == 0.5  # one adjacent swap
    assert task.reward(prompt, ("3", "1", "2", "1")) == 0.5  # the input copied: 2 digits in place
    assert task.reward(("3", "2", "1", "0", ":"), ("3", "2", "1", "0")) == 0.0
    assert task.reward(prompt, ("1", "1")) == 0.5  # stops early: missing tokens are wrong
    assert task.reward(prompt, ("1", "1", "2", "3", "3")) == 0.8  # one token too many


def test_sentiment_reward() -> None:
    task = Sentiment()
    prompt = ("review", ":", "movie", "plot")
    assert task.reward(prompt, ()) == 0.5
    assert task.reward(prompt, ("long", "french")) == 0.5  # neutral words
    assert task.reward(prompt, ("great", "dull")) == 0.5
    assert task.reward(prompt, ("great",)) == pytest.approx(1 / (1 + np.exp(-1)))
    assert task.reward(prompt, ("great", "fun", "wise")) > task.reward(prompt, ("great",))
    assert task.reward(prompt, ("awful", "boring")) == pytest.approx(1 / (1 + np.exp(2)))


@pytest.mark.parametrize("name", sorted(TASKS))
def test_prompts_have_the_declared_length_and_vocabulary(name: str) -> None:
    task = TASKS[name]
    rng = np.random.default_rng(0)
    for split in ("train", "heldout"):
        for prompt in task.sample_prompts(50, split, rng):
            assert len(prompt) == task.prompt_len
            assert set(prompt) <= set(task.vocab)
            assert task.split_of(prompt) == split


@pytest.mark.parametrize("name", sorted(TASKS))
def test_held_out_split_is_fixed_and_a_minority(name: str) -> None:
    task = TASKS[name]
    prompts = [task.random_prompt(np.random.default_rng(seed)) for seed in range(400)]
    splits = [task.split_of(p) for p in prompts]
    assert splits == [task.split_of(p) for p in prompts]  # a hash of the text, not of a seed
    share = splits.count("heldout") / len(splits)
    assert 0.1 < share < 0.5


@pytest.mark.parametrize("name", sorted(TASKS))
def test_demonstrator_is_imperfect_but_often_right(name: str) -> None:
    task = TASKS[name]
    rng = np.random.default_rng(0)
    prompts = [task.random_prompt(rng) for _ in range(500)]
    demos = [task.demonstrate(p, rng) for p in prompts]
    rewards = np.array([task.reward(p, d) for p, d in zip(prompts, demos, strict=True)])
    assert all(set(d) <= set(task.vocab) for d in demos)
    assert all(len(d) + 1 <= task.max_new_tokens for d in demos)  # room for eos
    assert 0.3 < rewards.mean() < 0.85  # room above the demonstrator for preference training
    assert rewards.min() < rewards.max()


def test_registry_marks_a_held_out_family() -> None:
    assert set(PUBLIC_TASKS) | set(HELD_OUT_TASKS) == set(TASKS)
    assert HELD_OUT_TASKS == ("sentiment",)
    assert all(TASKS[name].held_out for name in HELD_OUT_TASKS)
    with pytest.raises(ValueError, match="choose one of"):
        get_task("translation")
