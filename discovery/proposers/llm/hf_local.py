"""A local Hugging Face causal LM as an `LLMClient`, for users with weights but no server.

`HFLocalClient(config, generator=...)` loads `AutoModelForCausalLM` and `AutoTokenizer` from the
directory `config.path` on its first use (local files only: nothing is downloaded) and answers chat
messages by sampling token by token with a KV cache from the seeded `torch.Generator` it was given,
so a seeded campaign writes the same text. Messages go through the tokenizer's chat template when
it has one, else through a plain "SYSTEM: / USER: / ASSISTANT:" layout; a prompt longer than the
model's context minus `max_new_tokens` keeps its end. Generation stops at an end-of-sequence
token, at `max_new_tokens`, or at the wall-clock `timeout_s`, checked between tokens (it really
stops: nothing runs on in the background); the text so far is the reply, and whatever it is, the
proposer reads it as data (junk becomes rejections with reasons).

Weights that cannot be loaded, or a generation that fails (out of memory), raise `LLMCallError`
marked `config`, which pauses the campaign with the reason. Token counts are exact and the cost is
0. It does not build prompts or read replies: the LLM proposer does, as for any endpoint.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, DynamicCache

from discovery.proposers.errors import LLMCallError, ProposerConfigError
from discovery.proposers.llm.client import Completion, Message, estimate_tokens
from discovery.proposers.llm.config import HFLocalConfig, JsonMode
from evaluator import cache_argument

__all__ = ["HFLocalClient", "context_length"]


def context_length(path: str) -> int:
    """The longest sequence the model in `path` takes, from its config (read from disk only)."""
    if not Path(path).is_dir():
        raise ProposerConfigError(
            f"proposer.hf_local.path {path!r} is not a directory; point it at a directory written "
            "by save_pretrained (model and tokenizer)"
        )
    try:
        config = AutoConfig.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise ProposerConfigError(
            f"proposer.hf_local.path {path!r} holds no readable model config ({exc}); point it "
            "at a directory written by save_pretrained"
        ) from None
    for name in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    raise ProposerConfigError(
        f"cannot tell the context length of the model in {path!r}; set proposer.hf_local."
        "prompt_tokens"
    )


class HFLocalClient:
    """Chat completions from a local causal LM; see the module docstring."""

    def __init__(
        self,
        config: HFLocalConfig,
        *,
        generator: torch.Generator,
        context_tokens: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.endpoint = config.path
        self.config = config
        self.generator = generator  # CPU generator: samples are drawn on the CPU
        self.context_tokens = context_tokens  # prompt + generated tokens the model takes
        self.clock = clock
        self._model: Any = None
        self._tokenizer: Any = None

    def count_tokens(self, text: str) -> int:
        """Tokens of `text` under the model's tokenizer (estimated while it cannot load: the
        call that follows reports why)."""
        try:
            self._load()
        except LLMCallError:
            return estimate_tokens(text)
        return len(self._tokenizer(text, add_special_tokens=False)["input_ids"])

    def complete(
        self, messages: Sequence[Message], *, model: str, json_mode: JsonMode, timeout_s: float
    ) -> Completion:
        # JSON mode needs constrained decoding, which this client does not do: the prompt asks for
        # JSON and the reply parser also reads fenced code.
        del json_mode
        started = self.clock()
        self._load()
        ids = self._prompt_ids(messages)
        try:
            new = self._generate(ids, deadline=started + timeout_s)
        except (RuntimeError, torch.OutOfMemoryError) as exc:
            raise LLMCallError(
                f"generation with {self.endpoint} failed ({exc}); lower "
                "proposer.hf_local.max_new_tokens or use a smaller model",
                retryable=False,
                config=True,
            ) from None
        text = self._tokenizer.decode(new, skip_special_tokens=True)
        return Completion(text, len(ids), len(new), self.clock() - started, True)

    # -- helpers -----------------------------------------------------------------------------

    def _load(self) -> None:
        if self._model is not None:
            return
        path = self.config.path
        if not Path(path).is_dir():  # else from_pretrained could read a hub cache entry by name
            raise LLMCallError(f"{path} is not a directory", retryable=False, config=True)
        try:
            tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
            model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True, dtype="auto")
        except (OSError, ValueError, RuntimeError, ImportError) as exc:
            raise LLMCallError(
                f"cannot load a causal LM and its tokenizer from {path} ({exc})",
                retryable=False,
                config=True,
            ) from None
        self._tokenizer = tokenizer
        self._model = model.to(self.config.device).eval()

    def _prompt_ids(self, messages: Sequence[Message]) -> list[int]:
        tokenizer = self._tokenizer
        if getattr(tokenizer, "chat_template", None):
            text = tokenizer.apply_chat_template(
                list(messages), tokenize=False, add_generation_prompt=True
            )
        else:
            turns = [f"{m['role'].upper()}:\n{m['content']}" for m in messages]
            text = "\n\n".join([*turns, "ASSISTANT:\n"])
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        room = max(1, self.context_tokens - self.config.max_new_tokens)
        return list(ids[-room:])  # a prompt that is too long keeps its end (the request)

    def _stop_ids(self) -> set[int]:
        stops = set()
        for value in (self._tokenizer.eos_token_id, self._model.generation_config.eos_token_id):
            if isinstance(value, int):
                stops.add(value)
            elif isinstance(value, list):
                stops.update(v for v in value if isinstance(v, int))
        return stops

    @torch.no_grad()
    def _generate(self, ids: list[int], *, deadline: float) -> list[int]:
        model, device = self._model, self.config.device
        stops = self._stop_ids()
        cache = DynamicCache(config=model.config)  # keys/values of the tokens seen so far
        cache_arg = cache_argument(model)
        step = torch.tensor([ids], device=device)  # (1, P), then (1, 1) per new token
        new: list[int] = []
        for _ in range(self.config.max_new_tokens):
            logits = model(input_ids=step, use_cache=True, **{cache_arg: cache}).logits
            last = logits[0, -1].float().cpu()  # (V,)
            if self.config.temperature == 0:
                token = int(last.argmax())
            else:
                probs = torch.softmax(last / self.config.temperature, dim=-1)
                token = int(torch.multinomial(probs, 1, generator=self.generator))
            if token in stops:
                break
            new.append(token)
            if self.clock() >= deadline:
                break
            step = torch.tensor([[token]], device=device)
        return new
