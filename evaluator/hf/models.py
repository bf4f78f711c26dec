"""Loading the hf stage's models and tokenizers, with errors that name what was looked for.

A name is a local directory (saved with `save_pretrained`) when one exists there, a missing path
when it looks like one (`/`, `./`, `../`, `~`), and otherwise a hub name, loaded through
`from_pretrained` like any Hugging Face model. Anything that cannot be loaded raises
ModelNotFoundError with the role (policy, reference 2, reward model...), the name, and what to do.

Tokenizers without a pad token get their eos token as pad (GPT-2 has none), as TRL does. Models
are loaded on the CPU in the config's dtype and left in eval mode; the stage moves them. Nothing
here trains or generates.
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from evaluator.hf.errors import ModelNotFoundError

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
_OFFLINE_HINT = (
    "with HF_HUB_OFFLINE=1 or no network only models already in the local Hugging Face cache "
    "load: download it first, or give a local directory saved with save_pretrained"
)


def load_tokenizer(name: str, *, role: str = "tokenizer") -> PreTrainedTokenizerBase:
    """A tokenizer with a pad token; `role` names whose it is in errors ("policy": the policy's
    directory holds it)."""
    tokenizer = _load(AutoTokenizer, name, role=role)
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise ModelNotFoundError(
                f"the {role} {name!r} has neither a pad nor an eos token; give a tokenizer that "
                "has one (training pads batches and generation needs an end-of-sequence token)"
            )
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_causal_lm(name: str, *, role: str, dtype: str = "float32") -> PreTrainedModel:
    """A causal language model (policy or reference) in eval mode on the CPU."""
    return _load(AutoModelForCausalLM, name, role=role, dtype=DTYPES[dtype]).eval()


def load_reward_model(
    name: str, *, dtype: str = "float32"
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """A sequence-classification model and its tokenizer; its config knows the pad token."""
    model = _load(
        AutoModelForSequenceClassification, name, role="reward model", dtype=DTYPES[dtype]
    ).eval()
    tokenizer = load_tokenizer(name, role="reward model's tokenizer")
    if model.config.pad_token_id is None:  # batched scoring finds each row's end by its pads
        model.config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def _load(loader: type, name: str, *, role: str, **kwargs: object) -> object:
    path = Path(name).expanduser()
    if path.is_dir():
        source = str(path)
    elif name.startswith(("/", "./", "../", "~")):
        raise ModelNotFoundError(f"{role} {name!r}: no directory at {path}")
    else:
        source = name
    try:
        return loader.from_pretrained(source, **kwargs)
    except (OSError, ValueError) as exc:  # not found, offline, unreachable, not a model dir
        where = (
            f"the directory {path} holds no loadable {role} ({_first_line(exc)})"
            if path.is_dir()
            else f"it is not a local directory, and loading it from the Hugging Face hub failed "
            f"({_first_line(exc)}); {_OFFLINE_HINT}"
        )
        raise ModelNotFoundError(f"{role} {name!r}: {where}") from None


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:300] if lines else type(exc).__name__
