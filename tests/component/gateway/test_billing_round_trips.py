"""Tiers, cache writes and hosted tool calls charged end to end, through the official SDK."""

from __future__ import annotations

import pytest

from fake_responses_upstream import Behaviour, FakeResponsesUpstream
from gateway_harness import GatewayHarness, config_doc, deployment
from raw_http_server import eventually

PRICING = {
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
        "priority": {
            "inputUsdPerMillionTokens": 3.5,
            "cachedInputUsdPerMillionTokens": 0.875,
            "outputUsdPerMillionTokens": 14.0,
        },
        "scale": {"inputUsdPerMillionTokens": 2.2},
    },
    "hostedToolUsdPerCall": {"web_search": 0.01, "file_search": 0.0025},
}
# The fake reports 20 input tokens (5 cached) and one output token per word of its text.
WORDS = len("Alpha answers with seven short words".split())

WHO = {"key": "test", "tenant": "_none", "end_user": "_none"}
"""Who every billed figure is by: the harness key, which has no tenant, and no end user."""


def _doc(upstream: FakeResponsesUpstream) -> dict:
    return config_doc(
        [deployment("a", upstream.base_url)], [{"name": "gpt-4o", "targets": [{"deployment": "a"}], "pricing": PRICING}]
    )


async def _last_line(gw: GatewayHarness) -> dict:
    """The request log line of the last create (the writer thread flushes within 0.2 s)."""
    await eventually(lambda: any(line["route"] == "create" for line in gw.log_lines()), timeout=5)
    return [line for line in gw.log_lines() if line["route"] == "create"][-1]


def _cost(gw: GatewayHarness, tier: str) -> float | None:
    return gw.registry.get_sample_value(
        "modelgate_cost_usd_total",
        {
            "model": "gpt-4o",
            "deployment": "a",
            "key": "test",
            "tenant": "_none",
            "end_user": "_none",
            "estimated": "false",
            "operation": "create",
            "tier": tier,
        },
    )


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(
    ("requested", "served", "rates"),
    [
        ("auto", "default", (2.0, 0.5, 8.0)),
        ("flex", "flex", (1.0, 0.25, 4.0)),
        ("priority", "priority", (3.5, 0.875, 14.0)),
        ("auto", "scale", (2.2, 0.5, 8.0)),
        ("priority", "default", (2.0, 0.5, 8.0)),  # asked for priority, served at default: default prices
    ],
)
async def test_the_tier_that_served_prices_the_response(
    gateway, upstream_a, stream: bool, requested: str, served: str, rates: tuple[float, float, float]
) -> None:
    upstream_a.script = [Behaviour(service_tier=served)]
    gw = await gateway(_doc(upstream_a))
    async with gw.client() as client:
        if stream:
            events = [
                e
                async for e in await client.responses.create(
                    model="gpt-4o", input="hi", stream=True, service_tier=requested
                )
            ]  # type: ignore[arg-type]
            response = events[-1].response  # type: ignore[union-attr]
        else:
            response = await client.responses.create(model="gpt-4o", input="hi", service_tier=requested)  # type: ignore[arg-type]
    assert response.service_tier == served
    uncached, cached, output = rates
    assert _cost(gw, served) == pytest.approx((15 * uncached + 5 * cached + WORDS * output) / 1e6)
    line = await _last_line(gw)
    assert line["service_tier"] == served and line["usage_source"] == "reported"


async def test_cache_write_tokens_are_counted_and_priced(gateway, upstream_a) -> None:
    upstream_a.script = [Behaviour(cache_write_tokens=10)]
    gw = await gateway(_doc(upstream_a))
    async with gw.client() as client:
        response = await client.responses.create(model="gpt-4o", input="hi")
    assert response.usage is not None
    tokens = {
        "model": "gpt-4o",
        "deployment": "a",
        **WHO,
        "estimated": "false",
        "operation": "create",
        "tier": "default",
    }
    assert gw.registry.get_sample_value("modelgate_tokens_total", {**tokens, "type": "cache_write"}) == 10
    assert gw.registry.get_sample_value("modelgate_tokens_total", {**tokens, "type": "cached_input"}) == 5
    # 20 input: 5 read from the cache, 10 written to it, 5 plain
    assert _cost(gw, "default") == pytest.approx((5 * 2.0 + 5 * 0.5 + 10 * 2.5 + WORDS * 8.0) / 1e6)
    assert (await _last_line(gw))["cache_write_tokens"] == 10


def _tool_items() -> list[dict]:
    return [
        {
            "type": "web_search_call",
            "id": "ws_1",
            "status": "completed",
            "action": {"type": "search", "query": "weather"},
        },
        {"type": "web_search_call", "id": "ws_2", "status": "completed", "action": {"type": "search", "query": "news"}},
        {"type": "file_search_call", "id": "fs_1", "status": "completed", "queries": ["q"], "results": None},
        {
            "type": "code_interpreter_call",
            "id": "ci_1",
            "status": "completed",
            "code": "1+1",
            "container_id": "cntr_1",
            "outputs": None,
        },
    ]


@pytest.mark.parametrize("stream", [False, True])
async def test_hosted_tool_calls_are_counted_from_output_items(gateway, upstream_a, stream: bool) -> None:
    items = _tool_items()
    upstream_a.script = [Behaviour(tool_items=items)]
    gw = await gateway(_doc(upstream_a))
    async with gw.client() as client:
        if stream:
            events = [e async for e in await client.responses.create(model="gpt-4o", input="hi", stream=True)]
            response = events[-1].response  # type: ignore[union-attr]
        else:
            response = await client.responses.create(model="gpt-4o", input="hi")
    assert [item.type for item in response.output][:4] == [i["type"] for i in items]
    calls = {"model": "gpt-4o", "deployment": "a", **WHO, "operation": "create"}
    sample = gw.registry.get_sample_value
    assert sample("modelgate_hosted_tool_calls_total", {**calls, "tool": "web_search", "priced": "true"}) == 2
    assert sample("modelgate_hosted_tool_calls_total", {**calls, "tool": "file_search", "priced": "true"}) == 1
    assert sample("modelgate_hosted_tool_calls_total", {**calls, "tool": "code_interpreter", "priced": "false"}) == 1
    tokens = (15 * 2.0 + 5 * 0.5 + WORDS * 8.0) / 1e6
    assert _cost(gw, "default") == pytest.approx(tokens + 2 * 0.01 + 0.0025)
    assert (await _last_line(gw))["hosted_tool_calls"] == {"web_search": 2, "file_search": 1, "code_interpreter": 1}


async def test_a_large_answer_is_priced_at_its_served_tier(gateway, upstream_a) -> None:
    """Answers above 1 MiB are streamed through unparsed; their tier is still found and priced."""
    upstream_a.text = " ".join(["w" * 600_000] * 3)  # 1.8 MB of output text: the streamed path
    upstream_a.script = [Behaviour(service_tier="flex")]
    gw = await gateway(_doc(upstream_a))
    async with gw.client() as client:
        response = await client.responses.create(model="gpt-4o", input="hi")
    assert response.service_tier == "flex" and response.output_text == upstream_a.text
    assert _cost(gw, "flex") == pytest.approx((15 * 1.0 + 5 * 0.25 + 3 * 4.0) / 1e6)


async def test_a_large_answer_counts_its_hosted_tool_calls(gateway, upstream_a) -> None:
    """Above 1 MiB the answer is streamed through unparsed: its output items' types are still found
    by the bounded scan, and only those of ``output`` (a tool call type elsewhere is not counted)."""
    upstream_a.text = " ".join(["w" * 600_000] * 3)  # 1.8 MB of output text: the streamed path
    items = _tool_items()
    items[2]["results"] = [{"type": "web_search_call", "text": "x" * 100}]  # deeper: not an item
    upstream_a.script = [Behaviour(tool_items=items)]
    gw = await gateway(_doc(upstream_a))
    async with gw.client() as client:
        response = await client.responses.create(model="gpt-4o", input="hi")
    assert response.output_text == upstream_a.text
    calls = {"model": "gpt-4o", "deployment": "a", **WHO, "operation": "create"}
    await eventually(lambda: _tool_calls(gw, {**calls, "tool": "web_search", "priced": "true"}) == 2, timeout=5)
    assert _tool_calls(gw, {**calls, "tool": "file_search", "priced": "true"}) == 1
    assert _tool_calls(gw, {**calls, "tool": "code_interpreter", "priced": "false"}) == 1
    assert (await _last_line(gw))["hosted_tool_calls"] == {"web_search": 2, "file_search": 1, "code_interpreter": 1}


def _tool_calls(gw: GatewayHarness, labels: dict[str, str]) -> float:
    return gw.registry.get_sample_value("modelgate_hosted_tool_calls_total", labels) or 0.0
