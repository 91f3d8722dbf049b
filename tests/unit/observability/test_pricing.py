"""Cost arithmetic: cached input priced separately, overrides, unknown prices."""

import pytest

from modelgate_gateway.config import Pricing
from modelgate_gateway.observability.pricing import UNKNOWN_PRICES, Prices, cost_usd, effective_prices
from modelgate_gateway.observability.recording import Usage

GPT4O = Pricing(
    input_usd_per_million_tokens=2.5,
    cached_input_usd_per_million_tokens=1.25,
    output_usd_per_million_tokens=10,
)


def test_cached_input_is_a_subset_of_input_and_priced_at_the_cached_rate() -> None:
    usage = Usage(input_tokens=1_000_000, cached_input_tokens=400_000, output_tokens=0)
    # 600k uncached at 2.5/M + 400k cached at 1.25/M
    assert cost_usd(usage, Prices.from_pricing(GPT4O)) == pytest.approx(1.5 + 0.5)


def test_reasoning_tokens_are_part_of_output_and_not_billed_twice() -> None:
    usage = Usage(input_tokens=0, output_tokens=1000, reasoning_tokens=800)
    assert cost_usd(usage, Prices.from_pricing(GPT4O)) == pytest.approx(1000 * 10 / 1e6)


def test_unset_cached_price_falls_back_to_the_input_price() -> None:
    prices = Prices.from_pricing(Pricing(input_usd_per_million_tokens=3))
    usage = Usage(input_tokens=100, cached_input_tokens=100)
    assert cost_usd(usage, prices) == pytest.approx(300 / 1e6)


def test_deployment_pricing_overrides_model_pricing() -> None:
    override = Pricing(input_usd_per_million_tokens=5, output_usd_per_million_tokens=20)
    prices = effective_prices(GPT4O, override)
    assert cost_usd(Usage(input_tokens=10, output_tokens=10), prices) == pytest.approx(250 / 1e6)
    # an override with nothing set does not erase the model's prices
    assert effective_prices(GPT4O, Pricing()) == Prices.from_pricing(GPT4O)


def test_unknown_prices_cost_zero_and_say_so() -> None:
    prices = effective_prices(Pricing(), None)
    assert prices == UNKNOWN_PRICES
    assert not prices.known
    assert cost_usd(Usage(input_tokens=10, output_tokens=10), prices) == 0.0


def test_explicit_zero_prices_are_known_free_not_unknown() -> None:
    prices = Prices.from_pricing(Pricing(input_usd_per_million_tokens=0))
    assert prices.known


def test_cached_count_above_input_is_clamped_never_negative() -> None:
    usage = Usage(input_tokens=10, cached_input_tokens=50)
    assert cost_usd(usage, Prices.from_pricing(GPT4O)) == pytest.approx(10 * 1.25 / 1e6)


@pytest.mark.parametrize(
    ("usage", "expected"),
    [
        (Usage(input_tokens=-5, output_tokens=-7), 0.0),
        (Usage(input_tokens=10, cached_input_tokens=-4), 10 * 2.5 / 1e6),
        (Usage(input_tokens=10, cache_write_tokens=-4), 10 * 2.5 / 1e6),
        (Usage(input_tokens=10, cached_input_tokens=6, cache_write_tokens=6), 6 * 1.25 / 1e6 + 4 * 2.5 / 1e6),
        (Usage(input_tokens=10, output_tokens=-3), 10 * 2.5 / 1e6),
    ],
)
def test_malformed_counts_are_clamped_whatever_part_is_off(usage: Usage, expected: float) -> None:
    # The well-formed usual case skips the clamping: each kind of malformed count must still take it.
    assert cost_usd(usage, Prices.from_pricing(GPT4O)) == pytest.approx(expected)
