"""Token counts times configured prices, in USD. Pure: no I/O, no clock, no aiohttp.

Follows OpenAI's usage shape: cached input tokens are a subset of input tokens and reasoning
tokens a subset of output tokens, so neither is billed twice. A deployment's pricing overrides its
model's. Prices nobody configured are zero but flagged (``Prices.known``), so the observer can
make unpriced traffic visible instead of silently recording it as free.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..config import Pricing
from .recording import Usage

_PER_MILLION = 1_000_000.0


@dataclass(frozen=True, slots=True)
class Prices:
    """USD per single token, precomputed once per config load so the hot path only multiplies."""

    input: float = 0.0
    cached_input: float = 0.0
    output: float = 0.0
    known: bool = False
    """False when no price was configured at all: cost is 0 and reported as unpriced."""

    @classmethod
    def from_pricing(cls, pricing: Pricing | None) -> Prices:
        if pricing is None or not pricing.model_fields_set:
            return UNKNOWN_PRICES
        input_price = pricing.input_usd_per_million_tokens
        cached = pricing.cached_input_usd_per_million_tokens
        return cls(
            input=input_price / _PER_MILLION,
            # Unset cached price means cached tokens cost the same as uncached ones.
            cached_input=(input_price if cached is None else cached) / _PER_MILLION,
            output=pricing.output_usd_per_million_tokens / _PER_MILLION,
            known=True,
        )


UNKNOWN_PRICES = Prices()


def effective_prices(model_pricing: Pricing | None, deployment_pricing: Pricing | None) -> Prices:
    """The deployment's prices when it has any configured, else the model's."""
    if deployment_pricing is not None and deployment_pricing.model_fields_set:
        return Prices.from_pricing(deployment_pricing)
    return Prices.from_pricing(model_pricing)


def cost_usd(usage: Usage, prices: Prices) -> float:
    """Cost of one request's usage.

    Cached tokens are clamped to the input count: a malformed usage object must not produce a
    negative uncached count (and so a negative cost).
    """
    cached = min(max(usage.cached_input_tokens, 0), max(usage.input_tokens, 0))
    uncached = max(usage.input_tokens, 0) - cached
    return (
        uncached * prices.input
        + cached * prices.cached_input
        + max(usage.output_tokens, 0) * prices.output
    )
