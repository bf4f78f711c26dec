"""What an LLM call costs: dollars per million prompt and completion tokens, per model.

`PriceTable(prices).cost(model, prompt_tokens, completion_tokens)` prices one call. The table is
the campaign spec's `proposer.llm.prices` over a few built-in list prices (`DEFAULT_PRICES`, OpenAI
models, as published when this was written: override them when they change). A model in neither
costs 0, which is right for local endpoints (vLLM, Ollama, llama.cpp and hf-local run on your own
hardware and bill nothing) and wrong for a paid API: so a campaign with a dollar budget must price
every model it uses (see `unpriced`), or its budget could not stop anything.

This module only computes; it does not record calls or enforce budgets.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

__all__ = ["DEFAULT_PRICES", "Price", "PriceTable"]


@dataclass(frozen=True)
class Price:
    """List price of one model."""

    prompt: float  # dollars per million prompt (input) tokens
    completion: float  # dollars per million completion (output) tokens

    def __post_init__(self) -> None:
        if self.prompt < 0 or self.completion < 0:
            raise ValueError("prices are dollars per million tokens and cannot be negative")


# OpenAI list prices (standard tier, dollars per million tokens) as published in 2025. Exact model
# names only: a dated snapshot or another provider's model of the same name needs its own entry.
DEFAULT_PRICES: Mapping[str, Price] = {
    "gpt-4o": Price(2.50, 10.00),
    "gpt-4o-mini": Price(0.15, 0.60),
    "gpt-4.1": Price(2.00, 8.00),
    "gpt-4.1-mini": Price(0.40, 1.60),
    "gpt-4.1-nano": Price(0.10, 0.40),
    "gpt-5": Price(1.25, 10.00),
    "gpt-5-mini": Price(0.25, 2.00),
    "gpt-5-nano": Price(0.05, 0.40),
}


class PriceTable:
    """Prices by model: the spec's entries first, then `DEFAULT_PRICES`; unknown models cost 0."""

    def __init__(
        self, prices: Mapping[str, Price], *, defaults: Mapping[str, Price] = DEFAULT_PRICES
    ) -> None:
        self.prices = {**defaults, **prices}

    def price(self, model: str) -> Price | None:
        return self.prices.get(model)

    def cost(self, model: str, prompt_tokens: int, completion_tokens: int) -> float:
        """Dollars for one call; 0 for a model without a price."""
        price = self.prices.get(model)
        if price is None:
            return 0.0
        return (prompt_tokens * price.prompt + completion_tokens * price.completion) / 1e6

    def unpriced(self, models: Iterable[str]) -> list[str]:
        """The models without a price (each would count as free)."""
        return [m for m in models if m not in self.prices]
