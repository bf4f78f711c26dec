"""A tiny causal LM and tokenizer built locally and saved like a downloaded model (no network).

Random weights: what it writes is junk, which is the point (the hf-local proposer must turn junk
into rejections, not crashes). The tokenizer is a byte-level BPE trained on a few lines, so any
text round-trips and decoded output is arbitrary characters.
"""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

EOS = "<|endoftext|>"
_CORPUS = [
    '{"candidates": [{"thought": "scale the margin", "name": "soft", "code": "def loss(...)"}]}',
    "def loss(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps,",
    "    return -F.logsigmoid(beta * margin) + torch.relu(1 - beta * margin)",
    "The best candidates so far. Propose new loss functions for preference optimization.",
]


def save_tiny_causal_lm(path: Path, *, n_positions: int = 256, seed: int = 0) -> Path:
    """Write a GPT-2 shaped model of a few thousand weights and its tokenizer to `path`."""
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=320,
        special_tokens=[EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(_CORPUS, trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, eos_token=EOS, pad_token=EOS)
    eos = tokenizer.convert_tokens_to_ids(EOS)
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=n_positions,
        n_embd=32,
        n_layer=1,
        n_head=2,
        bos_token_id=eos,
        eos_token_id=eos,
        pad_token_id=eos,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = GPT2LMHeadModel(config)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
