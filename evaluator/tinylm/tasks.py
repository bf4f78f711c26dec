"""Task families of the tinylm stage: prompts, a programmatic reward, an imperfect demonstrator.

Each family is a frozen dataclass whose fields are its parameters (they key the reference cache,
together with `version`). A family says how to draw prompts from its train or held-out split, how
an imperfect demonstrator answers a prompt (the data the reference is fine-tuned on), and how good
a completion is (the true reward, in [0, 1]). Prompts and completions are tuples of word tokens;
every prompt of a family has the same number of tokens, so batches need no left padding.

The held-out split of prompts is fixed by a hash of the prompt text, the same for every seed:
preference pairs come only from train prompts, evaluation only from held-out ones. A family with
`held_out=True` is a held-out family: its metrics are stored but private (the discovery engine
must not show them to the proposer), as DiscoPOP held out IMDb and TL;DR.

This module does not tokenize, train or sample from models; randomness comes only from the
`numpy.random.Generator` passed in.
"""

from __future__ import annotations

import hashlib
import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

Tokens = tuple[str, ...]
Split = Literal["train", "heldout"]
DIGITS: Tokens = tuple(str(d) for d in range(10))


@dataclass(frozen=True)
class TaskFamily(ABC):
    """What every task family provides. Subclasses add their parameters as fields."""

    name: str
    held_out: bool  # True: metrics are private, never shown to the proposer
    # Keys the reference cache with the rest of the family; edits to the code key it by themselves
    # (reference.cache_key hashes the family's module): bump it for a change made elsewhere.
    version: int
    heldout_fraction: float  # share of the prompt space reserved for evaluation

    @property
    @abstractmethod
    def vocab(self) -> Tokens:
        """Every word a prompt or a completion can contain (special tokens excluded)."""

    @property
    @abstractmethod
    def prompt_len(self) -> int:
        """Number of tokens of every prompt."""

    @property
    @abstractmethod
    def max_new_tokens(self) -> int:
        """Longest completion worth generating, end-of-sequence token included."""

    @abstractmethod
    def random_prompt(self, rng: np.random.Generator) -> Tokens:
        """One prompt from the whole prompt space (either split)."""

    @abstractmethod
    def demonstrate(self, prompt: Tokens, rng: np.random.Generator) -> Tokens:
        """An imperfect demonstration: often right, sometimes wrong in task-typical ways."""

    @abstractmethod
    def reward(self, prompt: Sequence[str], completion: Sequence[str]) -> float:
        """True reward of a completion (end-of-sequence token excluded), in [0, 1]."""

    def split_of(self, prompt: Sequence[str]) -> Split:
        """Which split a prompt belongs to: a seed-independent hash of its text."""
        digest = hashlib.blake2b(" ".join(prompt).encode(), digest_size=8).digest()
        u = int.from_bytes(digest, "big") / 2**64  # uniform in [0, 1)
        return "heldout" if u < self.heldout_fraction else "train"

    def sample_prompts(self, n: int, split: Split, rng: np.random.Generator) -> list[Tokens]:
        """`n` prompts of one split, drawn with replacement."""
        prompts: list[Tokens] = []
        for _ in range(1000 * n):  # rejection sampling; a split holds >= 10% of the space
            if len(prompts) == n:
                return prompts
            prompt = self.random_prompt(rng)
            if self.split_of(prompt) == split:
                prompts.append(prompt)
        raise RuntimeError(f"task {self.name!r}: the {split} split is too small to sample from")


@dataclass(frozen=True)
class Arithmetic(TaskFamily):
    """'a + b =' -> the digits of a + b, zero-padded to a fixed width. The demonstrator is often
    off by a few units."""

    name: str = "arithmetic"
    held_out: bool = False
    version: int = 2
    heldout_fraction: float = 0.3
    max_operand: int = 9  # a, b in [0, max_operand]
    p_correct: float = 0.4  # probability that a demonstration is exact
    max_offset: int = 3  # wrong demonstrations are off by 1..max_offset; reward is 0 beyond it

    @property
    def vocab(self) -> Tokens:
        return (*DIGITS, "+", "=")

    @property
    def prompt_len(self) -> int:
        return 2 * len(str(self.max_operand)) + 2

    @property
    def max_new_tokens(self) -> int:
        return len(str(2 * self.max_operand)) + 2  # digits, eos, one token of slack

    def _operand(self, x: int) -> Tokens:
        return tuple(str(x).zfill(len(str(self.max_operand))))

    def _answer(self, x: int) -> Tokens:
        return tuple(str(x).zfill(len(str(2 * self.max_operand))))

    def random_prompt(self, rng: np.random.Generator) -> Tokens:
        a, b = (int(v) for v in rng.integers(0, self.max_operand + 1, size=2))
        return (*self._operand(a), "+", *self._operand(b), "=")

    def _truth(self, prompt: Sequence[str]) -> int:
        width = len(str(self.max_operand))
        return int("".join(prompt[:width])) + int("".join(prompt[width + 1 : 2 * width + 1]))

    def demonstrate(self, prompt: Tokens, rng: np.random.Generator) -> Tokens:
        answer = self._truth(prompt)
        if rng.random() >= self.p_correct:
            offset = int(rng.integers(1, self.max_offset + 1)) * (1 if rng.random() < 0.5 else -1)
            answer = abs(answer + offset)  # reflect at 0 so the error never vanishes
            if answer == self._truth(prompt):
                answer += 1
        return self._answer(answer)

    def reward(self, prompt: Sequence[str], completion: Sequence[str]) -> float:
        # Exact answer: 1; off by k <= max_offset: 1 - k/(max_offset+1); anything else: 0.
        # Any number of leading zeros is accepted: the reward judges the value, not the format.
        text = "".join(completion)
        if not text.isdecimal():
            return 0.0
        error = abs(int(text) - self._truth(prompt))
        return max(0.0, 1.0 - error / (self.max_offset + 1))


@dataclass(frozen=True)
class Sorting(TaskFamily):
    """'d1 d2 d3 d4 :' -> the digits in ascending order. The demonstrator often slips."""

    name: str = "sorting"
    held_out: bool = False
    version: int = 1
    heldout_fraction: float = 0.25
    length: int = 4  # digits per prompt
    max_digit: int = 5  # digits drawn from 0..max_digit
    p_correct: float = 0.3  # probability that a demonstration is exactly sorted

    @property
    def vocab(self) -> Tokens:
        return (*DIGITS[: self.max_digit + 1], ":")

    @property
    def prompt_len(self) -> int:
        return self.length + 1

    @property
    def max_new_tokens(self) -> int:
        return self.length + 2

    def random_prompt(self, rng: np.random.Generator) -> Tokens:
        digits = rng.integers(0, self.max_digit + 1, size=self.length)
        return (*(str(int(d)) for d in digits), ":")

    def demonstrate(self, prompt: Tokens, rng: np.random.Generator) -> Tokens:
        target = sorted(prompt[: self.length])
        u = rng.random()
        if u < self.p_correct:
            return tuple(target)
        if u < self.p_correct + (1 - self.p_correct) / 2:  # one adjacent swap
            i = int(rng.integers(0, self.length - 1))
            target[i], target[i + 1] = target[i + 1], target[i]
            return tuple(target)
        if u < self.p_correct + 3 * (1 - self.p_correct) / 4:  # copies the input unsorted
            return tuple(prompt[: self.length])
        i = int(rng.integers(0, self.length))  # one digit replaced
        target[i] = str(int(rng.integers(0, self.max_digit + 1)))
        return tuple(target)

    def reward(self, prompt: Sequence[str], completion: Sequence[str]) -> float:
        # Share of positions that hold the right digit; extra or missing tokens count as wrong.
        target = sorted(prompt[: self.length])
        hits = sum(a == b for a, b in zip(completion, target, strict=False))
        return hits / max(len(completion), len(target))


POSITIVE: Tokens = ("great", "superb", "moving", "brilliant", "fun", "lovely", "gripping", "wise")
NEGATIVE: Tokens = ("dull", "awful", "boring", "clumsy", "weak", "bland", "messy", "silly")
NEUTRAL: Tokens = ("long", "french", "quiet", "old", "new", "loud", "short", "strange")
LIKED_TOPICS: Tokens = ("movie", "film", "plot", "actor", "story")  # the demonstrator leans +
DISLIKED_TOPICS: Tokens = ("music", "ending", "scene", "cast", "set")  # and here it leans -
TOPICS: Tokens = LIKED_TOPICS + DISLIKED_TOPICS


@dataclass(frozen=True)
class Sentiment(TaskFamily):
    """'review : t1 t2' -> a few words, rewarded for positive sentiment (the IMDb experiment).

    The demonstrator writes mixed reviews whose lean depends on the topics; the reward is a
    logistic "sentiment classifier" over word counts, in the spirit of IMDb's sentiment model.
    """

    name: str = "sentiment"
    held_out: bool = True
    version: int = 1
    heldout_fraction: float = 0.25
    min_words: int = 3
    max_words: int = 6
    topic_bias: float = 0.15  # shift of P(positive word) - P(negative word) per liked topic

    @property
    def vocab(self) -> Tokens:
        return ("review", ":", *TOPICS, *POSITIVE, *NEGATIVE, *NEUTRAL)

    @property
    def prompt_len(self) -> int:
        return 4

    @property
    def max_new_tokens(self) -> int:
        return self.max_words + 2

    def random_prompt(self, rng: np.random.Generator) -> Tokens:
        a, b = (int(i) for i in rng.integers(0, len(TOPICS), size=2))
        return ("review", ":", TOPICS[a], TOPICS[b])

    def demonstrate(self, prompt: Tokens, rng: np.random.Generator) -> Tokens:
        leans = [self.topic_bias if t in LIKED_TOPICS else -self.topic_bias for t in prompt[2:]]
        lean = sum(leans) / len(leans)
        p_pos, p_neg = 0.3 + lean, 0.3 - lean  # the remaining 0.4 are neutral words
        n = int(rng.integers(self.min_words, self.max_words + 1))
        words = []
        for _ in range(n):
            u = rng.random()
            pool = POSITIVE if u < p_pos else NEGATIVE if u < p_pos + p_neg else NEUTRAL
            words.append(pool[int(rng.integers(0, len(pool)))])
        return tuple(words)

    def reward(self, prompt: Sequence[str], completion: Sequence[str]) -> float:
        # sigmoid(#positive - #negative): an empty or neutral review scores 0.5.
        score = sum(w in POSITIVE for w in completion) - sum(w in NEGATIVE for w in completion)
        return 1.0 / (1.0 + math.exp(-score))


# The registry: name -> family. Families with held_out=True keep their metrics private.
TASKS: dict[str, TaskFamily] = {task.name: task for task in (Arithmetic(), Sorting(), Sentiment())}
PUBLIC_TASKS: tuple[str, ...] = tuple(name for name, t in TASKS.items() if not t.held_out)
HELD_OUT_TASKS: tuple[str, ...] = tuple(name for name, t in TASKS.items() if t.held_out)


def get_task(name: str) -> TaskFamily:
    """The family called `name`; the error lists the known ones."""
    try:
        return TASKS[name]
    except KeyError:
        raise ValueError(f"unknown tinylm task {name!r}; choose one of {sorted(TASKS)}") from None
