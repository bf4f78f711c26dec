"""Preference pairs: two reference samples per prompt, ranked by a noisy annotator of the proxy.

`build_pairs` samples two completions per prompt from the reference (temperature 1, seeded
generator) and keeps the pairs whose samples both ended with eos. How a pair is labelled depends
on its split:

- train pairs (they feed training) are labelled as preference data is in practice: by an
  annotator who judges with the task's misspecified `proxy_reward`, noisily. Completion a is
  preferred with the Bradley-Terry probability sigmoid((proxy_a - proxy_b) / T), T the family's
  `annotator_temperature`, drawn with the `rng` passed in; pairs whose proxies tie carry no
  preference and are dropped. Training on them can over-optimize the proxy (tasks.py says how).
- held-out pairs (they measure implicit reward accuracy and log-prob drift) are ranked by the
  true reward, without noise: the accuracy says whether the policy learned what is wanted, not
  what the proxy says. Pairs whose true rewards tie are dropped.

Then each pair is flipped with probability `label_noise` (an annotator's slips, on top of the
Bradley-Terry noise). `PairSet.chosen_rewards` / `rejected_rewards` are the TRUE rewards of the
pair as labelled, for diagnostics: on train pairs the chosen one is sometimes the worse.

`PairSet` holds them tokenized as the trainer and TRL see them: prompt ids, then the completion
ids with eos appended, right-padded, keep-start truncation at `max_length`.

This module does not compute log-probs for training or run any optimizer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from evaluator.tinylm.model import sample
from evaluator.tinylm.reference import Reference
from evaluator.tinylm.tasks import Split, TaskFamily, Tokens
from evaluator.tinylm.tokenizer import decode, encode, pad_rows, to_text


@dataclass(frozen=True)
class PairSet:
    """N preference pairs. Row i of the tensors is chosen i, row N + i is rejected i."""

    prompts: list[Tokens]
    chosen: list[Tokens]  # completion words, eos excluded
    rejected: list[Tokens]
    input_ids: torch.Tensor  # (2N, T) prompt + completion + eos, right-padded
    completion_mask: torch.Tensor  # (2N, T) 1 on completion tokens (eos included)
    # True rewards as labelled (after any flip): on train pairs, chosen can be the worse one.
    chosen_rewards: torch.Tensor  # (N,)
    rejected_rewards: torch.Tensor  # (N,)
    flipped: torch.Tensor  # (N,) bool: label noise swapped this pair

    def __len__(self) -> int:
        return len(self.prompts)

    @property
    def lengths(self) -> torch.Tensor:
        """(2N,) completion token counts, eos included."""
        return self.completion_mask.sum(dim=1)

    def records(self) -> list[dict[str, str]]:
        """Pairs as TRL's prompt/chosen/rejected text; TRL appends the eos token itself."""
        return [
            {"prompt": to_text(p), "chosen": " " + to_text(c), "rejected": " " + to_text(r)}
            for p, c, r in zip(self.prompts, self.chosen, self.rejected, strict=True)
        ]


def label(
    task: TaskFamily,
    prompt: Tokens,
    a: Tokens,
    b: Tokens,
    *,
    split: Split,
    rng: np.random.Generator,
) -> bool | None:
    """Whether `a` is preferred to `b`; None when the judge sees no difference (pair dropped).

    Train split: a Bradley-Terry draw on the proxy rewards (one uniform from `rng`). Held-out
    split: the true reward decides, with no draw.
    """
    if split == "heldout":
        ra, rb = task.reward(prompt, a), task.reward(prompt, b)
        return None if ra == rb else ra > rb
    pa, pb = task.proxy_reward(prompt, a), task.proxy_reward(prompt, b)
    if pa == pb:
        return None
    z = (pa - pb) / task.annotator_temperature
    # sigmoid(z), written so that exp never overflows for a sharp annotator (tiny temperature)
    p_a = 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))
    return bool(rng.random() < p_a)


def build_pairs(
    reference: Reference,
    *,
    n_pairs: int,
    split: Split,
    label_noise: float,
    max_length: int,
    rng: np.random.Generator,
    generator: torch.Generator,
    max_rounds: int = 20,
) -> PairSet:
    """`n_pairs` pairs on prompts of `split`: train pairs labelled by a noisy annotator of the
    proxy reward, held-out pairs ranked by the true reward (see the module docstring)."""
    task, tok = reference.task, reference.tokenizer
    prompts: list[Tokens] = []
    chosen: list[Tokens] = []
    rejected: list[Tokens] = []
    rewards: list[tuple[float, float]] = []
    for _ in range(max_rounds):
        need = n_pairs - len(prompts)
        if need == 0:
            break
        m = need + need // 2 + 8  # oversample: pairs that tie (or did not end) are dropped
        batch = task.sample_prompts(m, split, rng)
        prompt_ids = torch.tensor([encode(tok, p) for p in batch])  # (m, P)
        seqs, _ = sample(
            reference.model,
            torch.cat([prompt_ids, prompt_ids]),  # (2m, P): two samples per prompt
            max_new_tokens=task.max_new_tokens,
            eos_token_id=tok.eos_token_id,
            pad_token_id=tok.pad_token_id,
            generator=generator,
        )
        finished = (seqs == tok.eos_token_id).any(dim=1)  # (2m,) ended with eos
        words = [decode(tok, row[task.prompt_len :].tolist()) for row in seqs]
        for i, prompt in enumerate(batch):
            if not (finished[i] and finished[m + i]):
                continue
            a, b = words[i], words[m + i]
            a_preferred = label(task, prompt, a, b, split=split, rng=rng)
            if a_preferred is None:
                continue
            if not a_preferred:
                a, b = b, a
            ra, rb = task.reward(prompt, a), task.reward(prompt, b)
            prompts.append(prompt)
            chosen.append(a)
            rejected.append(b)
            rewards.append((ra, rb))
            if len(prompts) == n_pairs:
                break
    if not prompts:
        raise RuntimeError(f"task {task.name!r}: no two reference samples could be ranked")

    # Label noise: a flipped pair swaps the annotator's label.
    flipped = rng.random(len(prompts)) < label_noise
    for i in np.flatnonzero(flipped):
        chosen[i], rejected[i] = rejected[i], chosen[i]
        rewards[i] = (rewards[i][1], rewards[i][0])

    eos = [tok.eos_token_id]
    rows = [(encode(tok, p), encode(tok, c) + eos) for p, c in zip(prompts, chosen, strict=True)]
    rows += [(encode(tok, p), encode(tok, r) + eos) for p, r in zip(prompts, rejected, strict=True)]
    input_ids, completion_mask = pad_rows(
        rows, pad_token_id=tok.pad_token_id, max_length=max_length
    )
    return PairSet(
        prompts=prompts,
        chosen=chosen,
        rejected=rejected,
        input_ids=input_ids,
        completion_mask=completion_mask,
        chosen_rewards=torch.tensor([r[0] for r in rewards]),
        rejected_rewards=torch.tensor([r[1] for r in rewards]),
        flipped=torch.from_numpy(flipped),
    )
