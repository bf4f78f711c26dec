"""A word-level tokenizer for a task's vocabulary, built locally with the `tokenizers` library.

Text is whitespace-separated words; each word of the task vocabulary is one token, and the special
tokens (`<pad>`, `<eos>`, `<unk>`) come first. The result is a `PreTrainedTokenizerFast`, so TRL's
DPOTrainer can use it as its processing class; the lean loop encodes token tuples through the same
object, so both tokenize identically. `pad_rows` turns (prompt ids, completion ids) rows into the
right-padded tensors that training and evaluation use. Nothing is downloaded.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from tokenizers import Tokenizer
from tokenizers.models import WordLevel
from tokenizers.pre_tokenizers import WhitespaceSplit
from transformers import PreTrainedTokenizerFast

PAD, EOS, UNK = "<pad>", "<eos>", "<unk>"
SPECIAL_TOKENS = (PAD, EOS, UNK)


def build_tokenizer(vocab: Sequence[str]) -> PreTrainedTokenizerFast:
    """Word-level tokenizer: ids 0..2 are pad, eos, unk; then `vocab` in order."""
    words = [*SPECIAL_TOKENS, *vocab]
    if len(set(words)) != len(words):
        raise ValueError("the vocabulary repeats a word or uses a special token")
    backend = Tokenizer(WordLevel({w: i for i, w in enumerate(words)}, unk_token=UNK))
    backend.pre_tokenizer = WhitespaceSplit()
    # Registered as special tokens so that "7<eos>" (TRL appends eos without a space) splits in two.
    backend.add_special_tokens(list(SPECIAL_TOKENS))
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token=PAD, eos_token=EOS, unk_token=UNK
    )


def encode(tokenizer: PreTrainedTokenizerFast, words: Sequence[str]) -> list[int]:
    """Ids of a tuple of words (no special tokens added); unknown words are an error."""
    ids = tokenizer.convert_tokens_to_ids(list(words))
    if tokenizer.unk_token_id in ids and UNK not in words:
        raise ValueError(
            f"words outside the vocabulary: {[w for w in words if w not in tokenizer.vocab]}"
        )
    return ids


def decode(tokenizer: PreTrainedTokenizerFast, ids: Sequence[int]) -> tuple[str, ...]:
    """Words of a completion, stopping before the first eos or pad."""
    words: list[str] = []
    for word in tokenizer.convert_ids_to_tokens(list(ids)):
        if word in (EOS, PAD):
            break
        words.append(word)
    return tuple(words)


def to_text(words: Sequence[str]) -> str:
    """Words as TRL sees them: space-separated."""
    return " ".join(words)


def pad_rows(
    rows: list[tuple[list[int], list[int]]], *, pad_token_id: int, max_length: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(prompt ids, completion ids) rows -> right-padded (input_ids, completion_mask), (n, T).

    Sequences longer than max_length keep their start, as TRL's `truncation_mode="keep_start"`.
    """
    width = min(max_length, max(len(p) + len(c) for p, c in rows))
    input_ids = torch.full((len(rows), width), pad_token_id, dtype=torch.long)
    completion_mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, (p, c) in enumerate(rows):
        ids = (p + c)[:width]
        input_ids[i, : len(ids)] = torch.tensor(ids)
        completion_mask[i, len(p) : len(ids)] = 1
    return input_ids, completion_mask
