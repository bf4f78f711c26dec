"""Measuring a trained hf policy: samples, Monte Carlo KL, reward-model scores, held-out pairs.

- `generate`: one sample per held-out prompt at temperature 1 (no top-k, no top-p: KL estimates
  need samples from the policy itself), seeded; the reference is sampled with the same seed.
- `sequence_logps` / `kl_estimate`: KL(pi || pi_ref) per sequence, the mean over the policy's
  samples of log pi(y|x) - log pi_ref(y|x), summed over the completion tokens (eos included):
  `kl/ref`.
- `reward_scores`: a sequence-classification model's logit for the chosen label on prompt +
  completion: `reward/mean` for the policy, `reward/ref_mean` for the reference.
- `pair_metrics`: on held-out pairs, DPO's implicit reward margin β[(π_c - ref_c) - (π_r - ref_r)]
  (`rewards/margins`), the fraction where it is positive (`rewards/accuracies`), and the drift of
  the chosen and rejected log-probs from the reference (`logps/chosen_drift`, `.../rejected_drift`).
- `param_norms` / `changed_fraction`: a fingerprint of each parameter tensor, to report which
  fraction training changed (`params/trained_changed`, and `params/frozen_changed` under LoRA).

Names match the tinylm stage's. This module does not train, load models or call a judge.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

Prompt = str | list[dict[str, str]]


@dataclass(frozen=True)
class Samples:
    """Completions of one model for a list of prompts (left-padded prompts, then completions)."""

    sequences: torch.Tensor  # (N, P+M) pad, prompt, completion, pad after the first eos
    attention_mask: torch.Tensor  # (N, P+M) 1 on prompt and completion tokens
    completion_mask: torch.Tensor  # (N, P+M) 1 on generated tokens up to the first eos
    texts: list[str]  # completions decoded, special tokens dropped


def encode_prompts(
    tokenizer: PreTrainedTokenizerBase, prompts: Sequence[Prompt]
) -> list[list[int]]:
    """Token ids of each prompt exactly as TRL tokenized it for training: the tokenizer's own
    special tokens for text, the chat template with the generation prompt for messages."""
    out = []
    for prompt in prompts:
        if isinstance(prompt, str):
            out.append(list(tokenizer(text=prompt)["input_ids"]))
        else:
            encoded = tokenizer.apply_chat_template(
                prompt, tokenize=True, return_dict=True, add_generation_prompt=True
            )
            out.append(list(encoded["input_ids"]))
    return out


@torch.no_grad()
def generate(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompt_ids: Sequence[list[int]],
    *,
    max_new_tokens: int,
    batch_size: int,
    seed: int,
) -> Samples:
    """One sample per prompt at temperature 1; the same seed gives the same draws."""
    device = next(model.parameters()).device
    pad, eos = tokenizer.pad_token_id, tokenizer.eos_token_id
    width = max(len(p) for p in prompt_ids)  # P: every prompt left-padded to it
    ids = torch.full((len(prompt_ids), width), pad, dtype=torch.long)  # (N, P)
    prompt_mask = torch.zeros_like(ids)
    for i, p in enumerate(prompt_ids):
        ids[i, width - len(p) :] = torch.tensor(p, dtype=torch.long)
        prompt_mask[i, width - len(p) :] = 1
    completions = []
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):  # generate draws from the global generator
        torch.manual_seed(seed)
        for start in range(0, len(prompt_ids), batch_size):
            out = model.generate(
                input_ids=ids[start : start + batch_size].to(device),
                attention_mask=prompt_mask[start : start + batch_size].to(device),
                do_sample=True,
                temperature=1.0,
                top_k=0,
                top_p=1.0,
                max_new_tokens=max_new_tokens,
                pad_token_id=pad,
                eos_token_id=eos,
            )  # (b, P + M_b), M_b <= max_new_tokens
            completions.append(out[:, width:].cpu())
    longest = max(c.shape[1] for c in completions)
    completion = torch.cat(
        [torch.nn.functional.pad(c, (0, longest - c.shape[1]), value=pad) for c in completions]
    )  # (N, M)
    is_eos = (completion == eos).long()
    # Kept: generated tokens up to and including the first eos (pad may equal eos, as in GPT-2),
    # never the padding that aligned batches of different lengths.
    keep = (is_eos.cumsum(dim=1) - is_eos) == 0  # (N, M)
    generated = torch.tensor([c.shape[1] for c in completions for _ in range(c.shape[0])])
    keep = (keep & (torch.arange(longest)[None, :] < generated[:, None])).long()
    texts = [
        tokenizer.decode(row[k.bool()], skip_special_tokens=True)
        for row, k in zip(completion, keep, strict=True)
    ]
    return Samples(
        sequences=torch.cat([ids, completion], dim=1),
        attention_mask=torch.cat([prompt_mask, keep], dim=1),
        completion_mask=torch.cat([torch.zeros_like(prompt_mask), keep], dim=1),
        texts=texts,
    )


@torch.no_grad()
def sequence_logps(model: PreTrainedModel, samples: Samples, batch_size: int) -> torch.Tensor:
    """Summed log-probs of each sample's completion under `model`, (N,) in float64.

    Positions count real tokens only (as generation numbered them), so left padding does not
    shift a prompt's positions.
    """
    device = next(model.parameters()).device
    out = []
    for start in range(0, samples.sequences.shape[0], batch_size):
        ids = samples.sequences[start : start + batch_size].to(device)  # (b, T)
        attention = samples.attention_mask[start : start + batch_size].to(device)
        completion = samples.completion_mask[start : start + batch_size].to(device)
        positions = (attention.cumsum(dim=1) - 1).clamp(min=0)  # (b, T)
        logits = model(input_ids=ids, attention_mask=attention, position_ids=positions).logits
        logps = torch.log_softmax(logits[:, :-1].float(), dim=-1)  # (b, T-1, V): t predicts t+1
        token = logps.gather(-1, ids[:, 1:, None]).squeeze(-1)  # (b, T-1)
        out.append((token * completion[:, 1:]).sum(dim=1).double().cpu())
    return torch.cat(out)


def kl_estimate(policy_logps: torch.Tensor, reference_logps: torch.Tensor) -> float:
    """Monte Carlo KL(pi || pi_ref) per sequence from the log-probs (N,) of policy samples."""
    return float((policy_logps - reference_logps).mean())  # E_pi[log pi(y|x) - log pi_ref(y|x)]


@torch.no_grad()
def reward_scores(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    *,
    label: int | None,
    batch_size: int,
) -> torch.Tensor:
    """The reward model's logit for `label` (default: the only one, or the last) per text, (N,)."""
    device = next(model.parameters()).device
    index = model.config.num_labels - 1 if label is None else label
    if not 0 <= index < model.config.num_labels:
        raise ValueError(
            f"reward_label {label} is outside the reward model's {model.config.num_labels} labels"
        )
    limit = min(getattr(tokenizer, "model_max_length", 512), 4096)
    out = []
    for start in range(0, len(texts), batch_size):
        enc = tokenizer(
            list(texts[start : start + batch_size]),
            padding=True,
            truncation=True,
            max_length=limit,
            return_tensors="pt",
        ).to(device)
        logits = model(**enc).logits  # (b, num_labels)
        out.append(logits[:, index].double().cpu())
    return torch.cat(out)


def reward_texts(
    tokenizer: PreTrainedTokenizerBase, prompts: Sequence[Prompt], completions: Sequence[str]
) -> list[str]:
    """What the reward model reads: prompt then completion (a conversation through the reward
    tokenizer's chat template when it has one, else its messages' contents in order)."""
    texts = []
    for prompt, completion in zip(prompts, completions, strict=True):
        if isinstance(prompt, str):
            texts.append(prompt + completion)
        elif getattr(tokenizer, "chat_template", None):
            messages = [*prompt, {"role": "assistant", "content": completion}]
            texts.append(tokenizer.apply_chat_template(messages, tokenize=False))
        else:
            texts.append("\n".join([*(m["content"] for m in prompt), completion]))
    return texts


def pair_metrics(logps: dict[str, torch.Tensor], beta: float) -> dict[str, float]:
    """Implicit reward accuracy, margin and log-prob drift on held-out pairs (all (N,) inputs)."""
    chosen_drift = logps["chosen"] - logps["ref_chosen"]  # (N,)
    rejected_drift = logps["rejected"] - logps["ref_rejected"]
    margins = beta * (chosen_drift - rejected_drift)  # (N,) DPO's implicit reward margin
    return {
        "rewards/accuracies": float((margins > 0).double().mean()),
        "rewards/margins": float(margins.mean()),
        "logps/chosen_drift": float(chosen_drift.mean()),
        "logps/rejected_drift": float(rejected_drift.mean()),
    }


@torch.no_grad()
def param_norms(model: torch.nn.Module) -> dict[str, tuple[bool, float]]:
    """name -> (trainable, L2 norm in float64): a cheap fingerprint of each parameter tensor."""
    return {
        name: (p.requires_grad, float(p.detach().double().norm()))
        for name, p in model.named_parameters()
    }


def changed_fraction(
    before: dict[str, tuple[bool, float]], after: dict[str, tuple[bool, float]], *, trainable: bool
) -> float | None:
    """Fraction of the trainable (or frozen) tensors whose fingerprint changed; None if none."""
    names = [n for n, (grad, _) in before.items() if grad is trainable and n in after]
    if not names:
        return None
    return sum(before[n][1] != after[n][1] for n in names) / len(names)
