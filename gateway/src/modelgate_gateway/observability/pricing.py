"""Usage times configured prices, in USD. Pure: no I/O, no clock, no aiohttp.

Follows OpenAI's usage shape: cached (cache read) and cache-write input tokens are parts of the
input tokens, and reasoning tokens part of the output tokens, so none is billed twice. The token
prices are those of the tier that served the response (``Usage.service_tier``); hosted tool calls
are billed per call on top. A deployment's pricing overrides its model's as a whole. Prices nobody
configured are zero but flagged (``Prices.known``), so the observer can make unpriced traffic
visible instead of silently recording it as free.

:func:`cost_usd` is the one cost function: metrics, the request log and budgets all call it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from ..config import Pricing, TokenPrices
from .recording import Usage

_PER_MILLION = 1_000_000.0
_EMPTY: Mapping[str, float] = MappingProxyType({})
_NO_TIERS: Mapping[str, Prices] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Prices:
    """USD per single token (and per hosted tool call), precomputed once per config load so the
    hot path only multiplies."""

    input: float = 0.0
    cached_input: float = 0.0
    output: float = 0.0
    known: bool = False
    """False when no price was configured at all: cost is 0 and reported as unpriced."""
    cache_write: float = 0.0
    tiers: Mapping[str, Prices] = field(default_factory=lambda: _NO_TIERS)
    """Token prices of the service tiers that have their own; the others pay these."""
    tools: Mapping[str, float] = field(default_factory=lambda: _EMPTY)
    """USD per call of each priced hosted tool (``web_search``, ...)."""

    @classmethod
    def from_pricing(cls, pricing: Pricing | None) -> Prices:
        if pricing is None or not pricing.model_fields_set:
            return UNKNOWN_PRICES
        base = _token_prices(pricing, None)
        tiers = {tier: _token_prices(prices, base) for tier, prices in pricing.tiers.items()}
        return cls(
            input=base.input,
            cached_input=base.cached_input,
            output=base.output,
            known=True,
            cache_write=base.cache_write,
            tiers=MappingProxyType(tiers),
            tools=MappingProxyType(dict(pricing.hosted_tool_usd_per_call)),
        )

    def for_tier(self, tier: str | None) -> Prices:
        """The token prices of ``tier`` (these when it has none of its own)."""
        if tier is None or not self.tiers:
            return self
        return self.tiers.get(tier, self)


def _token_prices(prices: TokenPrices, base: Prices | None) -> Prices:
    """Per-token prices of one price list; a tier's unset field takes ``base``'s value."""
    given = prices.model_fields_set

    def pick(name: str, fallback: float) -> float:
        value = getattr(prices, name)
        return fallback if value is None or (base is not None and name not in given) else value / _PER_MILLION

    input_price = pick("input_usd_per_million_tokens", base.input if base else 0.0)
    # An unset cached or cache-write price means those tokens cost what uncached input costs.
    return Prices(
        input=input_price,
        cached_input=pick("cached_input_usd_per_million_tokens", base.cached_input if base else input_price),
        output=pick("output_usd_per_million_tokens", base.output if base else 0.0),
        known=True,
        cache_write=pick("cache_write_usd_per_million_tokens", base.cache_write if base else input_price),
    )


UNKNOWN_PRICES = Prices()


def effective_prices(model_pricing: Pricing | None, deployment_pricing: Pricing | None) -> Prices:
    """The deployment's prices when it has any configured, else the model's."""
    if deployment_pricing is not None and deployment_pricing.model_fields_set:
        return Prices.from_pricing(deployment_pricing)
    return Prices.from_pricing(model_pricing)


def token_cost_usd(usage: Usage, prices: Prices) -> float:
    """Cost of the tokens, at the prices of the tier that served them.

    Cache reads and writes are clamped to the input count (reads first): a malformed usage object
    must not produce a negative uncached count (and so a negative cost). A well-formed usage (the
    parser only makes those) skips the clamping: ``min``/``max`` calls cost more than the sum.
    """
    tier = usage.service_tier
    rates = prices if tier is None or not prices.tiers else prices.tiers.get(tier, prices)
    inputs = usage.input_tokens
    cached = usage.cached_input_tokens
    written = usage.cache_write_tokens
    outputs = usage.output_tokens
    if not (cached >= 0 and written >= 0 and cached + written <= inputs and outputs >= 0):
        inputs = max(inputs, 0)
        cached = min(max(cached, 0), inputs)
        written = min(max(written, 0), inputs - cached)
        outputs = max(outputs, 0)
    return (
        (inputs - cached - written) * rates.input
        + cached * rates.cached_input
        + written * rates.cache_write
        + outputs * rates.output
    )


def tool_cost_usd(usage: Usage, prices: Prices) -> float:
    """Cost of the hosted tool calls; a tool without a configured per-call price costs 0."""
    if not usage.tool_calls:
        return 0.0
    tools = prices.tools
    return sum(max(calls, 0) * tools.get(tool, 0.0) for tool, calls in usage.tool_calls)


def cost_usd(usage: Usage, prices: Prices) -> float:
    """Cost of one billed event: its tokens at the served tier's prices plus its hosted tool calls."""
    tokens = token_cost_usd(usage, prices)
    return tokens + tool_cost_usd(usage, prices) if usage.tool_calls else tokens
