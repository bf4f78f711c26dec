"""Tiny Hugging Face models, tokenizers and preference files, built locally (nothing downloaded).

A word-level tokenizer (`tokenizers`, through the tinylm stage's builder) with a chat template,
tiny GPT-2 causal LMs and a tiny GPT-2 sequence classifier, saved with `save_pretrained` into
directories the hf stage loads by path, and JSONL preference sets (plain and conversational)
about film reviews whose preferred answers are the positive ones.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from transformers import GPT2Config, GPT2ForSequenceClassification, GPT2LMHeadModel

from evaluator.tinylm.tokenizer import build_tokenizer

GOOD = ("good", "great", "fine", "lovely", "superb", "moving")
BAD = ("bad", "awful", "dull", "boring", "weak", "poor")
SUBJECTS = ("film", "movie", "plot", "cast", "story", "ending", "score", "script")
VOCAB = (
    *GOOD,
    *BAD,
    *SUBJECTS,
    "the",
    "was",
    "is",
    "review",
    ":",
    "very",
    "quite",
    "user",
    "assistant",
    "and",
)
# Renders messages as "role : content" words and cues the answer with "assistant :".
CHAT_TEMPLATE = (
    "{% for m in messages %}{{ m['role'] }} : {{ m['content'] }} {% endfor %}"
    "{% if add_generation_prompt %}assistant : {% endif %}"
)


def save_tokenizer(directory: Path) -> None:
    tokenizer = build_tokenizer(VOCAB)
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(directory)


def _gpt2_config(vocab_size: int, **extra: object) -> GPT2Config:
    return GPT2Config(
        vocab_size=vocab_size,
        n_layer=2,
        n_head=2,
        n_embd=32,
        n_positions=64,
        pad_token_id=0,
        eos_token_id=1,
        bos_token_id=1,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        **extra,
    )


def save_causal_lm(directory: Path, *, seed: int) -> None:
    """A tiny GPT-2 with its tokenizer beside it; the seed decides the weights."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = GPT2LMHeadModel(_gpt2_config(len(VOCAB) + 3))
    model.save_pretrained(directory)
    save_tokenizer(directory)


def save_reward_model(directory: Path, *, seed: int) -> None:
    """A tiny two-label GPT-2 classifier (label 1 plays 'positive') with its tokenizer."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = GPT2ForSequenceClassification(_gpt2_config(len(VOCAB) + 3, num_labels=2))
    model.save_pretrained(directory)
    save_tokenizer(directory)


def preference_rows(n: int, *, seed: int, conversational: bool = False) -> list[dict]:
    """n review prompts; the chosen completion is positive, the rejected one negative."""
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        subject = SUBJECTS[rng.integers(len(SUBJECTS))]
        prompt = f"review : the {subject} was"
        chosen = f"{rng.choice(['very', 'quite'])} {GOOD[rng.integers(len(GOOD))]}"
        rejected = f"{rng.choice(['very', 'quite'])} {BAD[rng.integers(len(BAD))]}"
        if conversational:
            rows.append(
                {
                    "prompt": [{"role": "user", "content": prompt}],
                    "chosen": [{"role": "assistant", "content": chosen}],
                    "rejected": [{"role": "assistant", "content": rejected}],
                }
            )
        else:
            rows.append({"prompt": prompt, "chosen": f" {chosen}", "rejected": f" {rejected}"})
    return rows


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path
