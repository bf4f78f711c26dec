"""Building the LLM proposers (`llm`, `hf-local`) from a spec section, settings and collaborators.

`build_llm_proposer(spec, rng, settings=..., recorder=..., validator=..., dollar_budget=...)`
resolves what the spec leaves out from the settings the entry point read (`LLMSettings`: base URL,
model, API key), checks that a campaign with a dollar budget prices every model it may call, and
wires client, caller, breaker, bandit and proposer, each with its own generator spawned from `rng`.
Incomplete settings raise `ProposerConfigError` naming what to set, before anything starts.

The API key goes from `LLMSettings` into the client and nowhere else. For `hf-local` the model's
config is read from disk here (its context length sizes the prompt); the weights load on first use.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from pydantic import SecretStr

from discovery.proposers.errors import ProposerConfigError
from discovery.proposers.llm.bandit import ModelBandit
from discovery.proposers.llm.breaker import CircuitBreaker
from discovery.proposers.llm.calls import Caller, Recorder, RetryPolicy
from discovery.proposers.llm.client import OpenAIClient
from discovery.proposers.llm.config import HFLocalConfig, LLMConfig
from discovery.proposers.llm.hf_local import HFLocalClient, context_length
from discovery.proposers.llm.pricing import Price, PriceTable
from discovery.proposers.llm.proposer import LLMProposer, LLMProposerConfig, Validator

if TYPE_CHECKING:
    from discovery.spec import ProposerSpec

__all__ = ["LLMSettings", "build_llm_proposer"]


@dataclass(frozen=True)
class LLMSettings:
    """What the entry point read from LOSSFORGE_LLM_* (used where the spec is silent)."""

    base_url: str | None = None  # LOSSFORGE_LLM_BASE_URL
    model: str | None = None  # LOSSFORGE_LLM_MODEL
    api_key: SecretStr | None = None  # LOSSFORGE_LLM_API_KEY; masked in any repr


def build_llm_proposer(
    spec: ProposerSpec,
    rng: np.random.Generator,
    *,
    settings: LLMSettings,
    recorder: Recorder,
    validator: Validator | None,
    dollar_budget: bool,
) -> LLMProposer:
    """The proposer for `spec.kind` "llm" or "hf-local"; see the module docstring."""
    caller_rng, bandit_rng, torch_rng = rng.spawn(3)
    if spec.kind == "llm" and spec.llm is not None:
        return _llm(spec.llm, settings, recorder, validator, dollar_budget, caller_rng, bandit_rng)
    if spec.kind == "hf-local" and spec.hf_local is not None:
        seed = int(torch_rng.integers(2**62))
        return _hf_local(spec.hf_local, recorder, validator, caller_rng, bandit_rng, seed)
    raise ProposerConfigError(f"no LLM proposer for kind {spec.kind!r}")


def _llm(
    config: LLMConfig,
    settings: LLMSettings,
    recorder: Recorder,
    validator: Validator | None,
    dollar_budget: bool,
    caller_rng: np.random.Generator,
    bandit_rng: np.random.Generator,
) -> LLMProposer:
    base_url = config.base_url or settings.base_url
    if not base_url:
        raise ProposerConfigError(
            "no LLM endpoint: set proposer.llm.base_url in the spec or LOSSFORGE_LLM_BASE_URL "
            "(e.g. https://api.openai.com/v1, or http://localhost:11434/v1 for Ollama)"
        )
    single = config.model or settings.model
    models = list(config.models or ([single] if single else []))
    if not models:
        raise ProposerConfigError(
            "no LLM model: set proposer.llm.model (or models) in the spec or LOSSFORGE_LLM_MODEL"
        )
    prices = PriceTable({m: Price(p.prompt, p.completion) for m, p in config.prices.items()})
    unpriced = prices.unpriced(models)
    if dollar_budget and unpriced:
        raise ProposerConfigError(
            f"the campaign has an LLM-dollar budget but no price for {unpriced}, so it could not "
            f"count their calls: add proposer.llm.prices.{unpriced[0]}: {{prompt: ..., "
            "completion: ...}} (dollars per million tokens; 0 and 0 for a local endpoint)"
        )
    client = OpenAIClient(
        base_url=base_url,
        api_key=settings.api_key,
        temperature=config.temperature,
        max_tokens=config.max_tokens,
    )
    caller = Caller(
        client=client,
        prices=prices,
        recorder=recorder,
        breaker=CircuitBreaker(endpoint=base_url, threshold=config.breaker_calls),
        retry=RetryPolicy(max_retries=config.max_retries, backoff_s=config.backoff_s),
        max_tokens=config.max_tokens,
        timeout_s=config.timeout_s,
        json_mode=config.json_mode,
        rng=caller_rng,
    )
    # The proposer's own sandbox check feeds the repair turn and the bandit's acceptance rates.
    checks = config.repair_attempts > 0 or len(models) > 1
    return LLMProposer(
        name="llm",
        config=LLMProposerConfig(config.prompt_tokens, config.repair_attempts),
        caller=caller,
        bandit=ModelBandit(models, bandit_rng),
        validator=validator if checks else None,
    )


def _hf_local(
    config: HFLocalConfig,
    recorder: Recorder,
    validator: Validator | None,
    caller_rng: np.random.Generator,
    bandit_rng: np.random.Generator,
    seed: int,
) -> LLMProposer:
    context = context_length(config.path)
    prompt_tokens = config.prompt_tokens or max(1, context - config.max_new_tokens)
    client = HFLocalClient(
        config, generator=torch.Generator().manual_seed(seed), context_tokens=context
    )
    caller = Caller(
        client=client,
        prices=PriceTable({}, defaults={}),  # local weights bill nothing
        recorder=recorder,
        # Local failures do not pass on their own (a retry would only resample): pause at once.
        breaker=CircuitBreaker(endpoint=config.path, threshold=1),
        retry=RetryPolicy(max_retries=0),
        max_tokens=config.max_new_tokens,
        timeout_s=config.timeout_s,
        json_mode="off",
        rng=caller_rng,
    )
    return LLMProposer(
        name="hf-local",
        config=LLMProposerConfig(prompt_tokens, config.repair_attempts),
        caller=caller,
        bandit=ModelBandit([Path(config.path).name or config.path], bandit_rng),
        validator=validator if config.repair_attempts > 0 else None,
        count_tokens=client.count_tokens,
    )
