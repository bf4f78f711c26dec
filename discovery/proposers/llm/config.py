"""The campaign spec's sections for the LLM proposers: `proposer.llm` and `proposer.hf_local`.

Pydantic models, frozen, unknown fields refused (like the rest of the spec, discovery/spec.py).
`llm` configures any OpenAI-compatible endpoint; `base_url` and `model` may be left out, and then
come from the settings (`LOSSFORGE_LLM_BASE_URL`, `LOSSFORGE_LLM_MODEL`). The API key never
belongs in a spec (specs are stored in the archive and served by the API): a spec that carries
one is refused with a message naming `LOSSFORGE_LLM_API_KEY`, without echoing the value.

This module only validates; wiring.py turns these sections into proposers.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["HFLocalConfig", "JsonMode", "LLMConfig", "PriceSpec", "refuse_api_key"]

JsonMode = Literal["auto", "on", "off"]

_SECRET_FIELDS = {"api_key", "apikey", "api-key", "key", "token", "secret", "password"}


def refuse_api_key(data: Any) -> Any:
    """Refuse a spec section that carries a secret; the message never contains the value."""
    if isinstance(data, dict):
        found = sorted(k for k in data if isinstance(k, str) and k.lower() in _SECRET_FIELDS)
        if found:
            raise ValueError(
                f"{found[0]!r} does not belong in a campaign spec (specs are stored in the archive "
                "and shown by the API): remove it and set the environment variable "
                "LOSSFORGE_LLM_API_KEY instead"
            )
    return data


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PriceSpec(_Section):
    prompt: float = Field(ge=0, description="Dollars per million prompt (input) tokens.")
    completion: float = Field(ge=0, description="Dollars per million completion (output) tokens.")


class LLMConfig(_Section):
    """An OpenAI-compatible chat-completions endpoint (OpenAI, vLLM, Ollama, llama.cpp server)."""

    base_url: str | None = Field(
        None,
        description="Endpoint root, e.g. https://api.openai.com/v1 or http://localhost:8001/v1; "
        "default: LOSSFORGE_LLM_BASE_URL.",
    )
    model: str | None = Field(
        None, description="Model the endpoint serves; default: LOSSFORGE_LLM_MODEL."
    )
    models: list[str] | None = Field(
        None,
        min_length=2,
        description="Several models instead of `model`: a seeded bandit picks one per proposal "
        "call by its acceptance rate per dollar.",
    )
    temperature: float = Field(0.8, ge=0, le=2, description="Sampling temperature.")
    max_tokens: int = Field(
        2048, ge=64, le=65536, description="Most completion tokens per call (bounds its cost)."
    )
    timeout_s: float = Field(
        120.0, gt=0, le=3600, description="Seconds one request may take before it is abandoned."
    )
    max_retries: int = Field(
        3, ge=0, le=10, description="Retries of a request after a 429, a 5xx, a timeout or a drop."
    )
    backoff_s: float = Field(
        1.0,
        gt=0,
        le=60,
        description="Wait before the first retry; doubled on each further one (jittered, at most "
        "60 s); a server's Retry-After is honoured up to 60 s.",
    )
    breaker_calls: int = Field(
        2,
        ge=1,
        le=4,
        description="Calls in a row that fail after all their retries before the campaign pauses "
        "(at most 4: the engine ends a campaign whose proposer yields nothing 5 times in a row).",
    )
    repair_attempts: int = Field(
        1,
        ge=0,
        le=3,
        description="Follow-up turns that show the model the sandbox's reasons for its rejected "
        "candidates and ask for corrected ones; 0 also skips the proposer's own sandbox check.",
    )
    json_mode: JsonMode = Field(
        "auto",
        description="Ask for JSON output (response_format json_object): on, off, or auto (ask, "
        "and stop asking if the endpoint refuses it). Replies in fenced code blocks are read too.",
    )
    prompt_tokens: int = Field(
        6000,
        ge=1000,
        le=500_000,
        description="Budget of a prompt, in tokens estimated conservatively (3 characters each); "
        "the least useful parts are dropped first.",
    )
    prices: dict[str, PriceSpec] = Field(
        default_factory=dict,
        description="Dollars per million tokens by model, over built-in OpenAI list prices; a "
        "model without a price costs 0 (right for local endpoints).",
    )

    @model_validator(mode="before")
    @classmethod
    def _no_secret(cls, data: Any) -> Any:
        return refuse_api_key(data)

    @model_validator(mode="after")
    def _check(self) -> LLMConfig:
        if self.model is not None and self.models is not None:
            raise ValueError("set `model` or `models`, not both")
        if self.base_url is not None and not self.base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://, got {self.base_url!r}")
        if self.models is not None and len(set(self.models)) != len(self.models):
            raise ValueError(f"`models` repeats a model: {self.models}")
        return self


class HFLocalConfig(_Section):
    """A Hugging Face causal LM loaded from a local directory and run with transformers."""

    path: str = Field(
        min_length=1,
        description="Directory with the model and its tokenizer (save_pretrained layout); "
        "nothing is downloaded.",
    )
    max_new_tokens: int = Field(1024, ge=16, le=32768, description="Most tokens generated a call.")
    temperature: float = Field(0.8, ge=0, le=2, description="Sampling temperature; 0 is greedy.")
    timeout_s: float = Field(
        600.0,
        gt=0,
        le=86400,
        description="Wall-clock seconds a generation may take; it stops there and the reply is "
        "read as it is.",
    )
    repair_attempts: int = Field(
        1, ge=0, le=3, description="Follow-up turns showing the model its sandbox rejections."
    )
    device: Literal["cpu", "cuda"] = Field("cpu", description="Where the model runs.")
    prompt_tokens: int | None = Field(
        None,
        ge=64,
        description="Budget of a prompt in the model's tokens; default: its context length minus "
        "max_new_tokens. A longer prompt keeps its end.",
    )
