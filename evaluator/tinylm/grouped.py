"""K copies of one tiny GPT-2 or Llama with stacked weights, and their batched forward.

`GroupedLM` holds the weights of K policies as leaf tensors with a leading K dimension, laid out for
batched matmuls (`torch.baddbmm` on (K, tokens, in) x (K, in, out)): GPT-2's Conv1D weights as they
are, Llama's Linear weights transposed, its q/k/v and gate/up projections fused. It is built from a
`transformers` model (every copy starts at that model's weights), gives any copy back as that
model's weights (`write_to`), and computes `pair_logps`: the summed completion log-probs of a
batch of preference pairs under all K copies at once (what `model.sequence_logps` gives for one).
The tests check it against the `transformers` forward for both architectures.

Why hand-written: `torch.func.vmap(functional_call(model))` over the `transformers` models works but
runs slower than K sequential forwards on CPU (SDPA has no batching rule; vmap's overhead on a tiny
model exceeds the work), while these grouped layers do the same arithmetic in one kernel per layer.

Shared prompt: the chosen and rejected rows of a pair start with the same prompt tokens, and under
causal attention those positions have the same hidden states in both rows. The forward runs the
shared prefix once per pair (B rows) and the rest of each row (2B rows) after it, so the matmuls
see B*p + 2B*s tokens instead of 2B*(p+s). Padding is not masked: rows are right-padded, so causal
attention already keeps pads out of every real token, and pad positions carry no completion mask.

This module does not train (see `population`) and knows nothing of losses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from transformers import PreTrainedModel

Arch = Literal["gpt2", "llama"]


@dataclass(frozen=True)
class _Shape:
    """What the forward needs from the model's config."""

    arch: Arch
    n_layer: int
    n_head: int
    n_embd: int
    eps: float  # layer-norm (GPT-2) or RMS-norm (Llama) epsilon


def _gpt2_layout(n_layer: int) -> list[tuple[str, tuple[str, ...], bool]]:
    """(grouped name, transformers names, transposed) for GPT-2: Conv1D weights are (in, out)."""
    layout = [
        ("wte", ("transformer.wte.weight",), False),
        ("wpe", ("transformer.wpe.weight",), False),
    ]
    for i in range(n_layer):
        h = f"transformer.h.{i}."
        layout += [
            (f"{i}.ln1.w", (h + "ln_1.weight",), False),
            (f"{i}.ln1.b", (h + "ln_1.bias",), False),
            (f"{i}.qkv.w", (h + "attn.c_attn.weight",), False),
            (f"{i}.qkv.b", (h + "attn.c_attn.bias",), False),
            (f"{i}.proj.w", (h + "attn.c_proj.weight",), False),
            (f"{i}.proj.b", (h + "attn.c_proj.bias",), False),
            (f"{i}.ln2.w", (h + "ln_2.weight",), False),
            (f"{i}.ln2.b", (h + "ln_2.bias",), False),
            (f"{i}.fc.w", (h + "mlp.c_fc.weight",), False),
            (f"{i}.fc.b", (h + "mlp.c_fc.bias",), False),
            (f"{i}.out.w", (h + "mlp.c_proj.weight",), False),
            (f"{i}.out.b", (h + "mlp.c_proj.bias",), False),
        ]
    layout.append(("lnf.w", ("transformer.ln_f.weight",), False))
    layout.append(("lnf.b", ("transformer.ln_f.bias",), False))
    return layout


def _llama_layout(n_layer: int, tied: bool) -> list[tuple[str, tuple[str, ...], bool]]:
    """Llama: Linear weights are (out, in), stored transposed; q/k/v and gate/up fused."""
    layout = [("wte", ("model.embed_tokens.weight",), False)]
    for i in range(n_layer):
        h = f"model.layers.{i}."
        attn = tuple(h + f"self_attn.{p}_proj.weight" for p in "qkv")
        layout += [
            (f"{i}.ln1.w", (h + "input_layernorm.weight",), False),
            (f"{i}.qkv.w", attn, True),
            (f"{i}.proj.w", (h + "self_attn.o_proj.weight",), True),
            (f"{i}.ln2.w", (h + "post_attention_layernorm.weight",), False),
            (f"{i}.fc.w", (h + "mlp.gate_proj.weight", h + "mlp.up_proj.weight"), True),
            (f"{i}.out.w", (h + "mlp.down_proj.weight",), True),
        ]
    layout.append(("lnf.w", ("model.norm.weight",), False))
    if not tied:
        layout.append(("head.w", ("lm_head.weight",), True))
    return layout


class GroupedLM:
    """K policies with stacked weights. `params` are leaf tensors (K, ...) that training updates."""

    def __init__(
        self,
        shape: _Shape,
        layout: list[tuple[str, tuple[str, ...], bool]],
        params: dict[str, torch.Tensor],
        rotary: torch.nn.Module | None,
    ) -> None:
        self.shape = shape
        self.layout = layout
        self.params = params
        self.rotary = rotary  # Llama's rotary embedding module (no trainable weights), else None

    @classmethod
    def from_model(cls, model: PreTrainedModel, k: int) -> GroupedLM:
        """K trainable copies of `model`'s weights, on its device."""
        config = model.config
        if config.model_type == "gpt2":
            plain = (
                config.activation_function == "gelu"
                and config.scale_attn_weights
                and not config.scale_attn_by_inverse_layer_idx
                and not config.reorder_and_upcast_attn
                and config.resid_pdrop == config.embd_pdrop == config.attn_pdrop == 0.0
            )
            if not plain:
                raise ValueError(
                    "grouped GPT-2 supports build_model's settings only: exact GELU, 1/sqrt(d) "
                    "attention scaling, no dropout"
                )
            shape = _Shape(
                "gpt2", config.n_layer, config.n_head, config.n_embd, config.layer_norm_epsilon
            )
            layout, rotary = _gpt2_layout(config.n_layer), None
        elif config.model_type == "llama":
            if config.num_key_value_heads != config.num_attention_heads:
                raise ValueError("grouped Llama needs num_key_value_heads == num_attention_heads")
            if config.attention_bias or config.mlp_bias or config.hidden_act != "silu":
                raise ValueError("grouped Llama supports bias-free layers with SiLU only")
            if config.attention_dropout != 0.0:
                raise ValueError("grouped Llama supports no attention dropout")
            shape = _Shape(
                "llama",
                config.num_hidden_layers,
                config.num_attention_heads,
                config.hidden_size,
                config.rms_norm_eps,
            )
            tied = model.get_output_embeddings().weight is model.get_input_embeddings().weight
            layout, rotary = _llama_layout(config.num_hidden_layers, tied), model.model.rotary_emb
        else:
            raise ValueError(f"no grouped forward for model type {config.model_type!r}")
        state = dict(model.named_parameters())
        params = {}
        for name, sources, transposed in layout:
            parts = [state[s].detach().T if transposed else state[s].detach() for s in sources]
            one = torch.cat(parts, dim=-1)  # fused projections: outputs side by side
            params[name] = one.expand(k, *one.shape).clone().requires_grad_(True)
        return cls(shape, layout, params, rotary)

    @property
    def k(self) -> int:
        return self.params["wte"].shape[0]

    def select(self, keep: torch.Tensor) -> GroupedLM:
        """A new GroupedLM with the copies `keep` (indices), as fresh leaf tensors."""
        params = {n: p.detach()[keep].requires_grad_(True) for n, p in self.params.items()}
        return GroupedLM(self.shape, self.layout, params, self.rotary)

    @torch.no_grad()
    def write_to(self, index: int, model: PreTrainedModel) -> None:
        """Write the weights of copy `index` into `model` (same architecture and shape)."""
        state = dict(model.named_parameters())
        for name, sources, transposed in self.layout:
            value = self.params[name][index]
            sizes = [state[s].shape[0 if transposed else -1] for s in sources]
            for source, part in zip(sources, value.split(sizes, dim=-1), strict=True):
                state[source].copy_(part.T if transposed else part)

    # -- the forward ---------------------------------------------------------------------------

    def pair_logps(
        self, input_ids: torch.Tensor, completion_mask: torch.Tensor, prefix_len: int
    ) -> torch.Tensor:
        """Summed completion log-probs of B pairs under every copy: (K, 2B).

        input_ids, completion_mask (2B, T): rows 0..B-1 chosen, B..2B-1 rejected (pair i is rows
        i and B+i), right-padded, as the lean loop batches them. `prefix_len` is
        `shared_prefix(input_ids)`, computed by the caller where the ids live on the host (reading
        it back from a GPU would stall the step).
        """
        n_rows, width = input_ids.shape
        b, p = n_rows // 2, prefix_len
        prefix, suffix = input_ids[:b, :p], input_ids[:, p:]  # (B, p), (2B, s)
        h = self._trunk(prefix, suffix)  # (K, B*p + 2B*s, C) final hidden states
        logits = self._head(h)  # (K, M, V)
        logps = torch.log_softmax(logits, dim=-1)
        k, s, vocab = self.k, width - p, logps.shape[-1]
        # Every row's log-probs at positions 0..T-2 (position t predicts token t+1), summed over
        # the completion mask in one reduction, as `sequence_logps` sums them.
        pre = logps[:, : b * p].reshape(k, b, p, vocab).repeat(1, 2, 1, 1)  # (K, 2B, p, V)
        suf = logps[:, b * p :].reshape(k, n_rows, s, vocab)[:, :, :-1]  # (K, 2B, s-1, V)
        targets = input_ids[None, :, 1:, None].expand(k, -1, -1, 1)  # (K, 2B, T-1, 1)
        token_logps = torch.cat([pre, suf], dim=2).gather(-1, targets).squeeze(-1)  # (K, 2B, T-1)
        return (token_logps * completion_mask[:, 1:].to(token_logps.dtype)).sum(dim=-1)

    def _trunk(self, prefix: torch.Tensor, suffix: torch.Tensor) -> torch.Tensor:
        """Hidden states after the final norm of the B*p prefix and 2B*s suffix tokens."""
        pr, sh = self.params, self.shape
        k, (b, p), (n_rows, s) = self.k, prefix.shape, suffix.shape
        c = sh.n_embd
        pre = pr["wte"][:, prefix]  # (K, B, p, C)
        suf = pr["wte"][:, suffix]  # (K, 2B, s, C)
        if sh.arch == "gpt2":  # learned absolute positions: the prefix at 0..p-1, then p..p+s-1
            pre = pre + pr["wpe"][:, None, :p]
            suf = suf + pr["wpe"][:, None, p : p + s]
        x = torch.cat([pre.reshape(k, b * p, c), suf.reshape(k, n_rows * s, c)], dim=1)  # (K, M, C)
        rotary = self._rotary(p + s, x) if sh.arch == "llama" else None
        for i in range(sh.n_layer):
            qkv = self._linear(self._norm(x, f"{i}.ln1"), f"{i}.qkv")  # (K, M, 3C)
            x = x + self._linear(self._attention(qkv, b, p, s, rotary), f"{i}.proj")
            hidden = self._linear(self._norm(x, f"{i}.ln2"), f"{i}.fc")
            if sh.arch == "gpt2":
                hidden = F.gelu(hidden)  # exact GELU, as build_model configures
            else:
                gate, up = hidden.chunk(2, dim=-1)
                hidden = F.silu(gate) * up
            x = x + self._linear(hidden, f"{i}.out")
        return self._norm(x, "lnf")

    def _head(self, h: torch.Tensor) -> torch.Tensor:
        if "head.w" in self.params:
            return torch.bmm(h, self.params["head.w"])  # (K, M, C) x (K, C, V)
        return torch.bmm(h, self.params["wte"].transpose(1, 2))  # tied to the embedding

    def _linear(self, x: torch.Tensor, name: str) -> torch.Tensor:
        bias = self.params.get(name + ".b")
        if bias is None:
            return torch.bmm(x, self.params[name + ".w"])
        return torch.baddbmm(bias[:, None, :], x, self.params[name + ".w"])

    def _norm(self, x: torch.Tensor, name: str) -> torch.Tensor:
        weight = self.params[name + ".w"][:, None, :]  # (K, 1, C)
        if self.shape.arch == "gpt2":
            normed = F.layer_norm(x, x.shape[-1:], eps=self.shape.eps)
            return torch.addcmul(self.params[name + ".b"][:, None, :], normed, weight)
        # Llama's RMSNorm, in float32 as transformers computes it.
        x32 = x.float()
        x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.shape.eps)
        return weight * x32.to(x.dtype)

    def _rotary(self, width: int, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Llama's rotary (cos, sin), (T, head_dim), from the model's own rotary module."""
        positions = torch.arange(width, device=x.device)[None]  # (1, T)
        cos, sin = self.rotary(x, positions)  # (1, T, hd) each
        return cos[0], sin[0]

    def _attention(
        self,
        qkv: torch.Tensor,
        b: int,
        p: int,
        s: int,
        rotary: tuple[torch.Tensor, torch.Tensor] | None,
    ) -> torch.Tensor:
        """Causal self-attention over full rows rebuilt from prefix and suffix tokens: (K, M, C)."""
        k, nh, c = self.k, self.shape.n_head, self.shape.n_embd
        hd, width, n_rows = c // nh, p + s, 2 * b
        pre = qkv[:, : b * p].reshape(k, 1, b, p, 3 * c).expand(k, 2, b, p, 3 * c)
        pre = pre.reshape(k, n_rows, p, 3 * c)
        suf = qkv[:, b * p :].reshape(k, n_rows, s, 3 * c)
        rows = torch.cat([pre, suf], dim=2).view(k * n_rows, width, 3, nh, hd)
        q, key, v = rows.permute(2, 0, 3, 1, 4).unbind(0)  # each (K*2B, nh, T, hd)
        if rotary is not None:
            cos, sin = rotary
            q, key = _rotate(q, cos, sin), _rotate(key, cos, sin)
        out = F.scaled_dot_product_attention(q, key, v, is_causal=True)  # (K*2B, nh, T, hd)
        out = out.transpose(1, 2).reshape(k, n_rows, width, c)
        # Keep each token once: the prefix from the chosen rows, then every row's suffix.
        return torch.cat(
            [out[:, :b, :p].reshape(k, b * p, c), out[:, :, p:].reshape(k, n_rows * s, c)], dim=1
        )


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotary position embedding as transformers' Llama applies it (rotate-half convention)."""
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos + rotated * sin


def shared_prefix(input_ids: torch.Tensor) -> int:
    """Longest p < T such that every pair's chosen and rejected rows agree on their first p ids.

    input_ids (2B, T) as `GroupedLM.pair_logps` takes them.
    """
    b, width = input_ids.shape[0] // 2, input_ids.shape[1]
    agree = (input_ids[:b] == input_ids[b:]).long().cumprod(dim=1).sum(dim=1)  # (B,)
    return max(0, min(int(agree.min()), width - 1))  # at least one position per row apart
