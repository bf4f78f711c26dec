"""The reference policy: supervised fine-tuning on imperfect demonstrations, cached on disk.

`load_reference` returns the reference of a task for a model config and an SFT config. The first
call trains it (completion-only cross-entropy on demonstrations drawn from the task's imperfect
demonstrator, over the whole prompt space, as pretraining would see it) and saves the weights
under `cache_dir`, named by a content hash of the task family, model config, SFT config (its seed
included), the torch and transformers versions and the source of the code that builds it (this
module, the model and tokenizer builders, the task family's module); later calls with the same
content load that file. An edit to that code makes a new file rather than loading a stale one.
Writes are atomic (temporary file, then rename), so concurrent workers that train the same
reference do not corrupt it. The reference is shared by every run seed: seeds vary the pairs,
batches and evaluation draws.

This module does not build preference pairs or run DPO.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import inspect
import json
import logging
import math
import os
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import transformers
from transformers import PreTrainedModel, PreTrainedTokenizerFast

from evaluator.stage_configs import ModelConfig, SFTConfig
from evaluator.tinylm.model import build_model, sequence_logps
from evaluator.tinylm.tasks import TaskFamily
from evaluator.tinylm.tokenizer import build_tokenizer, encode, pad_rows

logger = logging.getLogger(__name__)

# Bump when the file layout changes (code changes key the cache by themselves, see cache_key).
CACHE_FORMAT = 2
# Modules whose source decides what a reference is, besides the task family's own module.
_BUILDER_MODULES = (
    "evaluator.tinylm.reference",
    "evaluator.tinylm.model",
    "evaluator.tinylm.tokenizer",
)


@dataclass
class Reference:
    """A trained reference policy and what it was built from."""

    model: PreTrainedModel  # frozen (requires_grad False), eval mode
    tokenizer: PreTrainedTokenizerFast
    task: TaskFamily
    path: Path  # the cache file holding its weights
    from_cache: bool  # True when loaded, False when trained by this call
    seconds: float  # time spent training or loading


@functools.cache
def code_digest(modules: tuple[str, ...]) -> str:
    """sha256 of the source files of `modules` (read once per process)."""
    digest = hashlib.sha256()
    for name in sorted(set(modules)):
        source = inspect.getsourcefile(importlib.import_module(name))
        if source is None:
            raise RuntimeError(f"no source file for {name}: cannot key the reference cache")
        digest.update(name.encode() + b"\0" + Path(source).read_bytes())
    return digest.hexdigest()


def cache_key(task: TaskFamily, model_config: ModelConfig, sft_config: SFTConfig) -> str:
    """Content hash naming a reference: same content and same code, same file."""
    content = {
        "format": CACHE_FORMAT,
        "task": {"class": type(task).__name__, **asdict(task)},
        # The dicts `asdict` gave when these were dataclasses: the key names the same content
        "model": model_config.model_dump(),
        "sft": sft_config.model_dump(),
        "torch": torch.__version__.split("+")[0],
        "transformers": transformers.__version__,  # model init and layers
        "code": code_digest((*_BUILDER_MODULES, type(task).__module__)),
    }
    blob = json.dumps(content, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:20]


def lr_at(step: int, config: SFTConfig) -> float:
    """Linear warmup then cosine decay to 10% of the peak; `step` counts from 0."""
    if step < config.warmup_steps:
        return config.learning_rate * (step + 1) / config.warmup_steps
    progress = (step - config.warmup_steps) / max(1, config.max_steps - config.warmup_steps)
    return config.learning_rate * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def demonstrations(
    task: TaskFamily,
    tokenizer: PreTrainedTokenizerFast,
    n: int,
    rng: np.random.Generator,
    max_length: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """n demonstrations as (input_ids (n, T), completion_mask (n, T)), right-padded with pad."""
    eos = tokenizer.eos_token_id
    rows = []
    for _ in range(n):
        prompt = task.random_prompt(rng)
        completion = task.demonstrate(prompt, rng)
        rows.append((encode(tokenizer, prompt), [*encode(tokenizer, completion), eos]))
    return pad_rows(rows, pad_token_id=tokenizer.pad_token_id, max_length=max_length)


def _fresh_model(
    task: TaskFamily, model_config: ModelConfig, seed: int
) -> tuple[PreTrainedModel, PreTrainedTokenizerFast]:
    """The task's tokenizer and an untrained model shaped for it (seeded initial weights)."""
    tokenizer = build_tokenizer(task.vocab)
    model = build_model(
        model_config,
        vocab_size=len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        seed=seed,
    )
    return model, tokenizer


def train_reference(
    task: TaskFamily, model_config: ModelConfig, sft_config: SFTConfig
) -> tuple[PreTrainedModel, PreTrainedTokenizerFast]:
    """Fine-tune a fresh model on the task's imperfect demonstrations (completion tokens only)."""
    model, tokenizer = _fresh_model(task, model_config, sft_config.seed)
    rng = np.random.default_rng([sft_config.seed, 0x5F7])
    input_ids, completion_mask = demonstrations(
        task, tokenizer, sft_config.num_demonstrations, rng, model_config.n_positions
    )
    n_tokens = completion_mask.sum(dim=1)  # (n,) completion tokens per demonstration
    batch_gen = torch.Generator().manual_seed(sft_config.seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=sft_config.learning_rate, weight_decay=0.0)
    order = torch.randperm(len(input_ids), generator=batch_gen)
    cursor = 0
    for step in range(sft_config.max_steps):
        if cursor + sft_config.per_device_train_batch_size > len(order):
            order, cursor = torch.randperm(len(input_ids), generator=batch_gen), 0
        idx = order[cursor : cursor + sft_config.per_device_train_batch_size]  # (B,)
        cursor += len(idx)
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, sft_config)
        # Mean token-level cross-entropy over the batch's completion tokens (TRL's SFT loss).
        loss = (
            -sequence_logps(model, input_ids[idx], completion_mask[idx]).sum() / n_tokens[idx].sum()
        )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    model.eval().requires_grad_(False)
    return model, tokenizer


def load_reference(
    task: TaskFamily, *, model_config: ModelConfig, sft_config: SFTConfig, cache_dir: Path
) -> Reference:
    """The cached reference of this content, trained and saved first if the cache lacks it."""
    start = time.perf_counter()
    path = (
        Path(cache_dir) / f"tinylm-ref-{task.name}-{cache_key(task, model_config, sft_config)}.pt"
    )
    if path.exists():
        model, tokenizer = _fresh_model(task, model_config, sft_config.seed)
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        model.eval().requires_grad_(False)
        return Reference(model, tokenizer, task, path, True, time.perf_counter() - start)

    model, tokenizer = train_reference(task, model_config, sft_config)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    os.close(fd)
    try:
        torch.save(model.state_dict(), tmp)
        os.replace(tmp, path)  # atomic: readers see the old state or the whole new file
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    seconds = time.perf_counter() - start
    logger.info("trained tinylm reference for %s in %.1f s -> %s", task.name, seconds, path)
    return Reference(model, tokenizer, task, path, False, seconds)
