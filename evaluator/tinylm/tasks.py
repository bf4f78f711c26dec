"""Task families of the tinylm stage: prompts, a true reward, a misspecified proxy, a demonstrator.

Each family is a frozen dataclass whose fields are its parameters (they key the reference cache,
together with `version`). A family says how to draw prompts from its train or held-out split, how
an imperfect demonstrator answers a prompt (the data the reference is fine-tuned on), how good a
completion is (the true reward, in [0, 1]), and how a learned reward model would score it (the
proxy reward). Prompts and completions are tuples of word tokens; every prompt of a family has
the same number of tokens, so batches need no left padding.

Why a proxy: preference data in practice is labelled by annotators or a reward model that only
approximates what is wanted. Train pairs are ranked by `proxy_reward` through a noisy annotator
(Bradley-Terry at `annotator_temperature`, see pairs.py), while evaluation uses the true
`reward`. Each proxy agrees with the true reward on most reference samples but overrates one
feature (an overshoot, brevity, a favourite word, a position, repetition and verbosity), so a
policy pushed far from the reference exploits it and its true reward falls (reward
over-optimization, Gao et al. 2023): the KL leash (beta) then matters, and a loss can be judged
by the true reward it reaches at a given KL (bench/tinylm_tasks.py measures DPO's curve).
`best_completion` is an optimal answer under the true reward, the ceiling a policy could reach.

Public families ask for exact algorithmic answers (arithmetic, sorting, reversal, maximum);
held-out families are open-ended, preference-like (sentiment, helpfulness), so a loss tuned on
the public ones is tested on a different kind of task.

The held-out split of prompts is fixed by a hash of the prompt text, the same for every seed:
preference pairs come only from train prompts, evaluation only from held-out ones. A family with
`held_out=True` is a held-out family: its metrics are stored but private (the discovery engine
must not show them to the proposer), as DiscoPOP held out IMDb and TL;DR.

This module does not tokenize, train or sample from models; randomness comes only from the
`numpy.random.Generator` passed in.
"""

from __future__ import annotations

import hashlib
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
    # Noise of the annotator that labels train pairs: P(a preferred to b) =
    # sigmoid((proxy_a - proxy_b) / annotator_temperature) (Bradley-Terry). Small: nearly
    # deterministic in the proxy; large: nearly coin flips.
    annotator_temperature: float

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

    @abstractmethod
    def proxy_reward(self, prompt: Sequence[str], completion: Sequence[str]) -> float:
        """What the (misspecified) labeller scores: agrees with `reward` on typical samples,
        overrates one feature. Only differences matter (Bradley-Terry), not the scale's origin."""

    @abstractmethod
    def best_completion(self, prompt: Sequence[str]) -> Tokens:
        """A completion with the highest true reward for `prompt` (fits max_new_tokens)."""

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
    """'a + b =' -> the digits of a + b, zero-padded to a fixed width.

    True reward: 1 for the exact sum, 1 - k/(max_offset+1) when off by k <= max_offset, else 0.
    The demonstrator is often off by a few units. Proxy: a grader that likes generous answers,
    the true reward plus `overshoot_bonus` for any answer above the sum (a reward model fit to
    raters who rounded up). With the bonus above 1/(max_offset+1), "sum + 1" outscores the exact
    sum: a policy pushed far from the reference moves its mass there (true reward 0.75), after
    first gaining by dropping the undershooting and far-off answers.
    """

    name: str = "arithmetic"
    held_out: bool = False
    version: int = 3
    heldout_fraction: float = 0.3
    annotator_temperature: float = 0.1
    max_operand: int = 9  # a, b in [0, max_operand]
    p_correct: float = 0.4  # probability that a demonstration is exact
    max_offset: int = 3  # wrong demonstrations are off by 1..max_offset; reward is 0 beyond it
    overshoot_bonus: float = 0.3  # proxy's extra score for an answer above the sum

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

    def proxy_reward(self, prompt: Sequence[str], completion: Sequence[str]) -> float:
        text = "".join(completion)
        overshoot = text.isdecimal() and int(text) > self._truth(prompt)
        return self.reward(prompt, completion) + (self.overshoot_bonus if overshoot else 0.0)

    def best_completion(self, prompt: Sequence[str]) -> Tokens:
        return self._answer(self._truth(prompt))


@dataclass(frozen=True)
class Sorting(TaskFamily):
    """'d1 d2 d3 d4 :' -> the digits in ascending order.

    True reward: the share of positions holding the right digit; extra or missing tokens count
    as wrong (the sorted digits less the last: 0.75). The demonstrator often slips, and sometimes
    stops one digit early. Proxy: a terse grader that reads only the first `length - 1` tokens
    (its window is one short) and charges `length_cost` per token (a reward model fit to raters
    who prized short answers). Among the reference's samples it mostly agrees with the truth, but
    it prefers the sorted digits without the last to the whole answer: a policy pushed far learns
    to stop early and loses a quarter of its reward (as DPO at small beta does by itself here).
    """

    name: str = "sorting"
    held_out: bool = False
    version: int = 2
    heldout_fraction: float = 0.25
    annotator_temperature: float = 0.1
    length: int = 4  # digits per prompt
    max_digit: int = 5  # digits drawn from 0..max_digit
    p_correct: float = 0.3  # probability that a demonstration is exactly sorted
    p_short: float = 0.15  # probability that a demonstration stops one digit early
    length_cost: float = 0.15  # proxy's charge per completion token

    @property
    def vocab(self) -> Tokens:
        return (*DIGITS[: self.max_digit + 1], ":")

    @property
    def prompt_len(self) -> int:
        return self.length + 1

    @property
    def max_new_tokens(self) -> int:
        # The digits and eos, no slack: the reference rarely writes a longer answer, and one
        # longer row widens its whole training batch (a step costs ~8% more per extra column).
        return self.length + 1

    def random_prompt(self, rng: np.random.Generator) -> Tokens:
        digits = rng.integers(0, self.max_digit + 1, size=self.length)
        return (*(str(int(d)) for d in digits), ":")

    def _sorted_answer(self, prompt: Sequence[str]) -> list[str]:
        return sorted(prompt[: self.length])

    def demonstrate(self, prompt: Tokens, rng: np.random.Generator) -> Tokens:
        target = self._sorted_answer(prompt)
        u = rng.random()
        if u < self.p_correct:
            answer = target
        elif u < self.p_correct + (1 - self.p_correct) / 2:  # one adjacent swap
            i = int(rng.integers(0, self.length - 1))
            target[i], target[i + 1] = target[i + 1], target[i]
            answer = target
        elif u < self.p_correct + 3 * (1 - self.p_correct) / 4:  # copies the input unsorted
            answer = list(prompt[: self.length])
        else:
            i = int(rng.integers(0, self.length))  # one digit replaced
            target[i] = str(int(rng.integers(0, self.max_digit + 1)))
            answer = target
        if rng.random() < self.p_short:  # stops early: one token too few
            answer = answer[:-1]
        return tuple(answer)

    def reward(self, prompt: Sequence[str], completion: Sequence[str]) -> float:
        # Share of positions that hold the right digit; extra or missing tokens count as wrong.
        target = self._sorted_answer(prompt)
        hits = sum(a == b for a, b in zip(completion, target, strict=False))
        return hits / max(len(completion), len(target))

    def proxy_reward(self, prompt: Sequence[str], completion: Sequence[str]) -> float:
        window = self.length - 1
        target = self._sorted_answer(prompt)[:window]
        hits = sum(a == b for a, b in zip(completion[:window], target, strict=False))
        return hits / window - self.length_cost * len(completion)

    def best_completion(self, prompt: Sequence[str]) -> Tokens:
        return tuple(self._sorted_answer(prompt))


LETTERS: Tokens = ("a", "b", "c", "d", "e", "f")


@dataclass(frozen=True)
class Reversal(TaskFamily):
    """'l1 l2 l3 l4 <' -> the letters in reverse order.

    True reward: the share of positions holding the right letter (as sorting). The demonstrator
    often copies the input forwards, swaps two neighbours or garbles a letter. Proxy: a grader
    with a favourite token, the share of right positions plus `favourite_bonus` per occurrence of
    `favourite` (a reward model that latched onto a word frequent in its good examples). Writing
    the favourite over a wrong letter always pays, over a right one too when the bonus exceeds
    1/length: a policy pushed far fills its answers with it.
    """

    name: str = "reversal"
    held_out: bool = False
    version: int = 1
    heldout_fraction: float = 0.25
    annotator_temperature: float = 0.1
    length: int = 4  # letters per prompt
    p_correct: float = 0.35  # probability that a demonstration is exactly reversed
    favourite: str = "a"  # the token the proxy overrates
    favourite_bonus: float = 0.45  # proxy's score per occurrence of the favourite

    @property
    def vocab(self) -> Tokens:
        return (*LETTERS, "<")

    @property
    def prompt_len(self) -> int:
        return self.length + 1

    @property
    def max_new_tokens(self) -> int:
        return self.length + 2

    def random_prompt(self, rng: np.random.Generator) -> Tokens:
        letters = rng.integers(0, len(LETTERS), size=self.length)
        return (*(LETTERS[int(i)] for i in letters), "<")

    def best_completion(self, prompt: Sequence[str]) -> Tokens:
        return tuple(reversed(prompt[: self.length]))

    def demonstrate(self, prompt: Tokens, rng: np.random.Generator) -> Tokens:
        target = list(self.best_completion(prompt))
        u = rng.random()
        if u < self.p_correct:
            return tuple(target)
        if u < self.p_correct + (1 - self.p_correct) / 3:  # copies the input forwards
            return tuple(prompt[: self.length])
        if u < self.p_correct + 2 * (1 - self.p_correct) / 3:  # swaps two neighbours
            i = int(rng.integers(0, self.length - 1))
            target[i], target[i + 1] = target[i + 1], target[i]
            return tuple(target)
        i = int(rng.integers(0, self.length))  # one letter garbled
        target[i] = LETTERS[int(rng.integers(0, len(LETTERS)))]
        return tuple(target)

    def reward(self, prompt: Sequence[str], completion: Sequence[str]) -> float:
        target = self.best_completion(prompt)
        hits = sum(a == b for a, b in zip(completion, target, strict=False))
        return hits / max(len(completion), len(target))

    def proxy_reward(self, prompt: Sequence[str], completion: Sequence[str]) -> float:
        favourites = sum(w == self.favourite for w in completion)
        return self.reward(prompt, completion) + self.favourite_bonus * favourites


@dataclass(frozen=True)
class Maximum(TaskFamily):
    """'d1 d2 d3 d4 max' -> the largest digit.

    True reward: 1 - (largest - answer)/(max_gap+1) for a digit of the prompt, so 0 beyond
    `max_gap` below the largest, and 0 for anything else. The demonstrator often answers the
    first digit, the second largest or a random digit of the prompt. Proxy: a grader with a
    position bias, the true reward plus `first_bonus` when the answer is the prompt's first digit
    (learned reward models favour what comes first). With the bonus at 1 it ranks the first digit
    at least as high as the largest (above it whenever the first earns any credit) and above every
    other answer, so a simple rule, "answer the first digit", maximizes it (true reward about
    0.45). Pairs of other answers agree with the truth: a policy near the reference learns to find
    the largest digit; pushed far it falls back to the first one.
    """

    name: str = "maximum"
    held_out: bool = False
    version: int = 1
    heldout_fraction: float = 0.25
    annotator_temperature: float = 0.1
    length: int = 4  # digits per prompt
    p_correct: float = 0.3  # probability that a demonstration is the largest digit
    max_gap: int = 3  # answers below the largest by more than this earn no reward
    first_bonus: float = 1.0  # proxy's extra score for answering the first digit

    @property
    def vocab(self) -> Tokens:
        return (*DIGITS, "max")

    @property
    def prompt_len(self) -> int:
        return self.length + 1

    @property
    def max_new_tokens(self) -> int:
        return 3  # one digit, eos, one token of slack

    def random_prompt(self, rng: np.random.Generator) -> Tokens:
        digits = rng.integers(0, 10, size=self.length)
        return (*(str(int(d)) for d in digits), "max")

    def best_completion(self, prompt: Sequence[str]) -> Tokens:
        return (max(prompt[: self.length]),)

    def demonstrate(self, prompt: Tokens, rng: np.random.Generator) -> Tokens:
        digits = list(prompt[: self.length])
        u = rng.random()
        if u < self.p_correct:
            return self.best_completion(prompt)
        if u < self.p_correct + (1 - self.p_correct) / 3:  # the first digit
            return (digits[0],)
        if u < self.p_correct + 2 * (1 - self.p_correct) / 3:  # the second largest
            return (sorted(digits)[-2],)
        return (digits[int(rng.integers(0, self.length))],)  # any digit of the prompt

    def reward(self, prompt: Sequence[str], completion: Sequence[str]) -> float:
        if len(completion) != 1 or completion[0] not in prompt[: self.length]:
            return 0.0
        gap = int(max(prompt[: self.length])) - int(completion[0])
        return max(0.0, 1.0 - gap / (self.max_gap + 1))

    def proxy_reward(self, prompt: Sequence[str], completion: Sequence[str]) -> float:
        first = tuple(completion) == (prompt[0],)
        return self.reward(prompt, completion) + (self.first_bonus if first else 0.0)


POSITIVE: Tokens = ("great", "superb", "moving", "brilliant", "fun", "lovely", "gripping", "wise")
NEGATIVE: Tokens = ("dull", "awful", "boring", "clumsy", "weak", "bland", "messy", "silly")
NEUTRAL: Tokens = ("long", "french", "quiet", "old", "new", "loud", "short", "strange")
LIKED_TOPICS: Tokens = ("movie", "film", "plot", "actor", "story")  # the demonstrator leans +
DISLIKED_TOPICS: Tokens = ("music", "ending", "scene", "cast", "set")  # and here it leans -
TOPICS: Tokens = LIKED_TOPICS + DISLIKED_TOPICS


@dataclass(frozen=True)
class Sentiment(TaskFamily):
    """'review : t1 t2' -> a few words, rewarded for positive sentiment (the IMDb experiment).

    The demonstrator writes mixed reviews whose lean depends on the topics. True reward: a reader
    who wants a positive review that does not repeat itself, 0.5 + (distinct positive words -
    negative words - repeated words) / (2 max_words), clipped to [0, 1]; the best review is
    max_words distinct positive words. Proxy: a linear sentiment classifier over word counts (as
    IMDb's sentiment model), +1 per positive and -1 per negative occurrence, with `favourite`
    weighted `favourite_weight` (a spurious feature of its training set), and blind to
    repetition. A policy pushed far writes "great great great ...", which the classifier loves
    and the reader does not.
    """

    name: str = "sentiment"
    held_out: bool = True
    version: int = 2
    heldout_fraction: float = 0.25
    annotator_temperature: float = 0.1
    min_words: int = 3
    max_words: int = 6
    topic_bias: float = 0.15  # shift of P(positive word) - P(negative word) per liked topic
    favourite: str = "great"  # the word the proxy classifier overrates
    favourite_weight: float = 3.0  # its weight (other positive words weigh 1)

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
        distinct_positive = len(set(completion) & set(POSITIVE))
        negative = sum(w in NEGATIVE for w in completion)
        repeated = len(completion) - len(set(completion))
        score = distinct_positive - negative - repeated
        return min(1.0, max(0.0, 0.5 + score / (2 * self.max_words)))

    def proxy_reward(self, prompt: Sequence[str], completion: Sequence[str]) -> float:
        score = sum(
            self.favourite_weight if w == self.favourite else 1.0 if w in POSITIVE else 0.0
            for w in completion
        ) - sum(w in NEGATIVE for w in completion)
        return 0.5 + score / (2 * self.max_words)

    def best_completion(self, prompt: Sequence[str]) -> Tokens:
        return POSITIVE[: self.max_words]


KEYWORDS: Tokens = (
    "price", "size", "color", "weight", "speed", "battery", "screen", "warranty", "sound", "camera"
)  # fmt: skip
FILLERS: Tokens = ("sure", "well", "indeed", "really", "basically", "honestly")


@dataclass(frozen=True)
class Helpfulness(TaskFamily):
    """'ask : k1 k2' -> a reply that should address both asked-about aspects, and nothing else.

    True reward: a user who wants both aspects covered, concisely, (aspects covered)/2 -
    `waste_penalty` per other word (fillers, off-topic aspects, repeated mentions), clipped at 0;
    the best reply is "k1 k2". The demonstrator covers each aspect often, pads with fillers,
    sometimes drifts off topic. Proxy: a relevance model that counts mentions of the asked
    aspects, repeats included (`repeat_bonus` per repeat), with the verbosity bias of learned
    reward models (`length_bonus` per word; Singhal et al. 2023). It agrees with the user on
    coverage, the first thing a policy learns, but prefers "k1 k2 k1 k2 k1 well" to "k1 k2": a
    policy pushed far repeats itself and pads.
    """

    name: str = "helpfulness"
    held_out: bool = True
    version: int = 1
    heldout_fraction: float = 0.25
    annotator_temperature: float = 0.1
    p_cover: float = 0.6  # probability that a demonstration mentions each asked-about aspect
    max_fillers: int = 3  # a demonstration pads with 0..max_fillers filler words
    p_off_topic: float = 0.2  # probability that a demonstration mentions an aspect not asked
    waste_penalty: float = 0.15  # true reward lost per word that is not an asked aspect
    length_bonus: float = 0.1  # proxy's score per word
    repeat_bonus: float = 0.3  # proxy's score per repeated mention of an asked aspect

    @property
    def vocab(self) -> Tokens:
        return ("ask", ":", *KEYWORDS, *FILLERS)

    @property
    def prompt_len(self) -> int:
        return 4

    @property
    def max_new_tokens(self) -> int:
        return self.max_fillers + 5  # 2 aspects, fillers, an off-topic aspect, eos, one of slack

    def random_prompt(self, rng: np.random.Generator) -> Tokens:
        a, b = (int(i) for i in rng.choice(len(KEYWORDS), size=2, replace=False))
        return ("ask", ":", KEYWORDS[a], KEYWORDS[b])

    def demonstrate(self, prompt: Tokens, rng: np.random.Generator) -> Tokens:
        words = [k for k in prompt[2:] if rng.random() < self.p_cover]
        if rng.random() < self.p_off_topic:
            others = [k for k in KEYWORDS if k not in prompt[2:]]
            words.append(others[int(rng.integers(0, len(others)))])
        n_fill = int(rng.integers(0, self.max_fillers + 1))
        words += [FILLERS[int(i)] for i in rng.integers(0, len(FILLERS), size=n_fill)]
        return tuple(words[int(i)] for i in rng.permutation(len(words)))

    def _covered(self, prompt: Sequence[str], completion: Sequence[str]) -> int:
        return len(set(prompt[2:]) & set(completion))

    def reward(self, prompt: Sequence[str], completion: Sequence[str]) -> float:
        covered = self._covered(prompt, completion)
        waste = len(completion) - covered
        return max(0.0, covered / 2 - self.waste_penalty * waste)

    def proxy_reward(self, prompt: Sequence[str], completion: Sequence[str]) -> float:
        covered = self._covered(prompt, completion)
        mentions = sum(w in prompt[2:] for w in completion)
        return (
            covered / 2
            + self.repeat_bonus * (mentions - covered)
            + self.length_bonus * len(completion)
        )

    def best_completion(self, prompt: Sequence[str]) -> Tokens:
        return tuple(prompt[2:])


# The registry: name -> family. Families with held_out=True keep their metrics private.
TASKS: dict[str, TaskFamily] = {
    task.name: task
    for task in (Arithmetic(), Sorting(), Reversal(), Maximum(), Sentiment(), Helpfulness())
}
PUBLIC_TASKS: tuple[str, ...] = tuple(name for name, t in TASKS.items() if not t.held_out)
HELD_OUT_TASKS: tuple[str, ...] = tuple(name for name, t in TASKS.items() if t.held_out)


def get_task(name: str) -> TaskFamily:
    """The family called `name`; the error lists the known ones."""
    try:
        return TASKS[name]
    except KeyError:
        raise ValueError(f"unknown tinylm task {name!r}; choose one of {sorted(TASKS)}") from None
