"""Tiny causal LMs built from a config (no downloads), their log-probs, and seeded sampling.

`build_model` turns a `ModelConfig` into a GPT-2 or Llama model from `transformers` with seeded
weights and no dropout. `sequence_logps` gives the summed log-probabilities of completion tokens,
as TRL computes them for DPO. `sample` draws completions token by token, with a KV cache, from a
`torch.Generator` (`generate` cannot take one). This module does not train anything.
"""

from __future__ import annotations

import inspect

import torch
from transformers import (
    DynamicCache,
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedModel,
)

from evaluator.stage_configs import ModelConfig


def build_model(
    config: ModelConfig, *, vocab_size: int, pad_token_id: int, eos_token_id: int, seed: int
) -> PreTrainedModel:
    """A freshly initialised model; the same seed gives the same weights bit for bit."""
    common = {
        "vocab_size": vocab_size,
        "pad_token_id": pad_token_id,
        "eos_token_id": eos_token_id,
        "bos_token_id": eos_token_id,
        "use_cache": False,  # training needs no cache; `sample` asks for one explicitly
    }
    if config.arch == "gpt2":
        hf_config = GPT2Config(
            n_layer=config.n_layer,
            n_head=config.n_head,
            n_embd=config.n_embd,
            n_positions=config.n_positions,
            activation_function="gelu",  # exact GELU is one fused op; "gelu_new" is five
            resid_pdrop=0.0,  # no dropout: runs are deterministic and match TRL's disable_dropout
            embd_pdrop=0.0,
            attn_pdrop=0.0,
            **common,
        )
        model_cls: type[PreTrainedModel] = GPT2LMHeadModel
    else:
        hf_config = LlamaConfig(
            num_hidden_layers=config.n_layer,
            num_attention_heads=config.n_head,
            num_key_value_heads=config.n_head,
            hidden_size=config.n_embd,
            intermediate_size=4 * config.n_embd,
            max_position_embeddings=config.n_positions,
            attention_dropout=0.0,
            **common,
        )
        model_cls = LlamaForCausalLM
    # transformers initialises weights from the global RNG: fork it so the seed stays local.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = model_cls(hf_config)
    return model.eval()  # no dropout anyway; eval() keeps any future dropout off


def sequence_logps(
    model: PreTrainedModel, input_ids: torch.Tensor, completion_mask: torch.Tensor
) -> torch.Tensor:
    """Summed log-probs of the completion tokens of each row.

    input_ids (N, T) right-padded prompt+completion; completion_mask (N, T) is 1 on completion
    tokens. Pads sit after every real token, so causal attention keeps them out of real tokens'
    logits either way; the attention mask is passed as TRL does. Returns (N,).
    """
    attention_mask = input_ids.ne(model.config.pad_token_id).long()  # (N, T)
    logits = model(input_ids=input_ids, attention_mask=attention_mask).logits[:, :-1]
    # logits (N, T-1, V): position t predicts token t+1
    logps = torch.log_softmax(logits, dim=-1)
    token_logps = logps.gather(-1, input_ids[:, 1:, None]).squeeze(-1)  # (N, T-1)
    mask = completion_mask[:, 1:].to(token_logps.dtype)
    return (token_logps * mask).sum(dim=-1)


def cache_argument(model: PreTrainedModel) -> str:
    """The forward argument that takes a KV cache: transformers renamed `past_key_values` to
    `cache` (5.2x; the old name goes in 5.40), and older 5.x releases know only the old one."""
    forward = inspect.signature(model.forward).parameters
    return "cache" if "cache" in forward else "past_key_values"


@torch.no_grad()
def sample(
    model: PreTrainedModel,
    prompt_ids: torch.Tensor,
    *,
    max_new_tokens: int,
    eos_token_id: int,
    pad_token_id: int,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Ancestral sampling at temperature 1 (what KL and reward estimates need).

    prompt_ids (N, P), all prompts of one length. Returns (sequences (N, P+M), completion_mask
    (N, P+M)) with M <= max_new_tokens: the mask is 1 on generated tokens up to and including the
    first eos; tokens after it are pad. A row that never emits eos keeps all its tokens.
    """
    n, p = prompt_ids.shape
    cache = DynamicCache(config=model.config)  # keys/values of the tokens seen so far
    cache_arg = cache_argument(model)
    seqs, step_ids = prompt_ids, prompt_ids  # (N, t), and the tokens the next forward adds
    done = torch.zeros(n, dtype=torch.bool)  # (N,) has emitted eos
    mask_cols = []
    for _ in range(max_new_tokens):
        attention_mask = seqs.ne(pad_token_id).long()  # (N, t): pads only trail finished rows
        out = model(
            input_ids=step_ids, attention_mask=attention_mask, use_cache=True, **{cache_arg: cache}
        )
        probs = torch.softmax(out.logits[:, -1].float(), dim=-1)  # (N, V)
        nxt = torch.multinomial(probs, 1, generator=generator).squeeze(1)  # (N,)
        nxt = torch.where(done, torch.full_like(nxt, pad_token_id), nxt)
        mask_cols.append(~done)
        done = done | (nxt == eos_token_id)
        seqs, step_ids = torch.cat([seqs, nxt[:, None]], dim=1), nxt[:, None]
        if bool(done.all()):
            break
    completion_mask = torch.cat(
        [torch.zeros(n, p, dtype=torch.bool), torch.stack(mask_cols, dim=1)], dim=1
    )
    return seqs, completion_mask.long()
