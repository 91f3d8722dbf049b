"""Price rules beyond plain tokens: the served tier's prices, cache writes, hosted tool calls."""

import pytest
from pydantic import ValidationError

from modelgate_gateway.config import Pricing
from modelgate_gateway.observability.pricing import Prices, cost_usd, effective_prices, token_cost_usd, tool_cost_usd
from modelgate_gateway.observability.recording import Usage

PRICING = Pricing.model_validate(
    {
        "inputUsdPerMillionTokens": 2.0,
        "cachedInputUsdPerMillionTokens": 0.5,
        "cacheWriteUsdPerMillionTokens": 2.5,
        "outputUsdPerMillionTokens": 8.0,
        "tiers": {
            "flex": {
                "inputUsdPerMillionTokens": 1.0,
                "cachedInputUsdPerMillionTokens": 0.25,
                "outputUsdPerMillionTokens": 4.0,
            },
            "priority": {"inputUsdPerMillionTokens": 3.5, "outputUsdPerMillionTokens": 14.0},
        },
        "hostedToolUsdPerCall": {"web_search": 0.01, "file_search": 0.0025},
    }
)
PRICES = Prices.from_pricing(PRICING)
M = 1_000_000


def test_the_served_tier_prices_the_tokens_not_the_default() -> None:
    usage = Usage(input_tokens=M, output_tokens=M, service_tier="flex")
    assert cost_usd(usage, PRICES) == pytest.approx(1.0 + 4.0)
    assert cost_usd(Usage(input_tokens=M, output_tokens=M, service_tier="default"), PRICES) == pytest.approx(10.0)
    assert cost_usd(Usage(input_tokens=M, output_tokens=M), PRICES) == pytest.approx(10.0)


def test_a_tier_without_its_own_prices_pays_the_base_prices() -> None:
    assert cost_usd(Usage(input_tokens=M, service_tier="scale"), PRICES) == pytest.approx(2.0)


def test_a_price_a_tier_leaves_unset_is_the_base_price() -> None:
    # priority sets no cached or cache-write price: the base ones apply (0.5 and 2.5), not its input price
    usage = Usage(input_tokens=3 * M, cached_input_tokens=M, cache_write_tokens=M, service_tier="priority")
    assert token_cost_usd(usage, PRICES) == pytest.approx(3.5 + 0.5 + 2.5)


def test_cache_writes_are_part_of_input_at_their_own_price() -> None:
    usage = Usage(input_tokens=4 * M, cached_input_tokens=M, cache_write_tokens=2 * M, output_tokens=0)
    # 1M uncached at 2.0 + 1M read at 0.5 + 2M written at 2.5
    assert cost_usd(usage, PRICES) == pytest.approx(2.0 + 0.5 + 5.0)


def test_unset_cache_write_price_is_the_input_price() -> None:
    prices = Prices.from_pricing(Pricing(input_usd_per_million_tokens=3))
    assert cost_usd(Usage(input_tokens=M, cache_write_tokens=M), prices) == pytest.approx(3.0)


def test_cache_reads_and_writes_above_the_input_count_are_clamped() -> None:
    usage = Usage(input_tokens=M, cached_input_tokens=M // 2, cache_write_tokens=5 * M)
    # reads first (0.5M at 0.5), then writes up to what is left (0.5M at 2.5); nothing uncached
    assert cost_usd(usage, PRICES) == pytest.approx(0.25 + 1.25)


def test_hosted_tool_calls_are_billed_per_call_on_top_of_tokens() -> None:
    usage = Usage(input_tokens=M, tool_calls=(("web_search", 3), ("file_search", 2)))
    assert tool_cost_usd(usage, PRICES) == pytest.approx(0.03 + 0.005)
    assert cost_usd(usage, PRICES) == pytest.approx(2.0 + 0.035)


def test_a_tool_without_a_per_call_price_costs_nothing() -> None:
    assert tool_cost_usd(Usage(tool_calls=(("code_interpreter", 4),)), PRICES) == 0.0


def test_tool_prices_do_not_depend_on_the_tier() -> None:
    usage = Usage(tool_calls=(("web_search", 1),), service_tier="flex")
    assert cost_usd(usage, PRICES) == pytest.approx(0.01)


def test_a_deployment_price_list_replaces_tiers_and_tools_too() -> None:
    override = Pricing.model_validate({"inputUsdPerMillionTokens": 9.0})
    prices = effective_prices(PRICING, override)
    assert cost_usd(Usage(input_tokens=M, service_tier="flex", tool_calls=(("web_search", 1),)), prices) == 9.0


def test_tier_and_tool_names_are_validated() -> None:
    with pytest.raises(ValidationError):
        Pricing.model_validate({"tiers": {"Flex Tier": {}}})
    with pytest.raises(ValidationError):
        Pricing.model_validate({"hostedToolUsdPerCall": {"web_search": -1}})
