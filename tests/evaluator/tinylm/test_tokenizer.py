"""The word-level tokenizer: ids, TRL-style text, decoding."""

from __future__ import annotations

import pytest

from evaluator.tinylm.tasks import TASKS
from evaluator.tinylm.tokenizer import EOS, build_tokenizer, decode, encode, to_text


@pytest.mark.parametrize("name", sorted(TASKS))
def test_text_and_word_encodings_agree(name: str) -> None:
    task = TASKS[name]
    tok = build_tokenizer(task.vocab)
    assert len(tok) == len(task.vocab) + 3 < 100
    words = task.vocab[:5]
    ids = encode(tok, words)
    # TRL tokenizes prompt + " " + completion + eos as one string, with no special tokens added.
    text_ids = tok(to_text(words[:2]) + " " + to_text(words[2:]) + EOS)["input_ids"]
    assert text_ids == [*ids, tok.eos_token_id]
    assert decode(tok, [*ids, tok.eos_token_id, *ids]) == tuple(words)


def test_unknown_words_are_an_error() -> None:
    tok = build_tokenizer(TASKS["arithmetic"].vocab)
    with pytest.raises(ValueError, match="outside the vocabulary"):
        encode(tok, ["7", "apple"])
    with pytest.raises(ValueError, match="repeats"):
        build_tokenizer(["a", "a"])
