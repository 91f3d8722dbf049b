"""Compaction is billed as its own operation: server-side compaction through ``context_management`` on create."""

from __future__ import annotations

import pytest

from gateway_harness import GatewayHarness, config_doc, deployment
from raw_http_server import eventually

PRICING = {"inputUsdPerMillionTokens": 2.0, "outputUsdPerMillionTokens": 8.0}
WORDS = len("Alpha answers with seven short words".split())


def _tokens(gw: GatewayHarness, operation: str) -> float | None:
    return gw.registry.get_sample_value(
        "modelgate_tokens_total",
        {
            "model": "gpt-4o",
            "deployment": "a",
            "key": "test",
            "tenant": "_none",
            "end_user": "_none",
            "type": "input",
            "estimated": "false",
            "operation": operation,
            "tier": "default",
        },
    )


@pytest.mark.parametrize("stream", [False, True])
async def test_a_create_that_compacted_is_billed_as_compaction(gateway, upstream_a, stream: bool) -> None:
    gw = await gateway(
        config_doc(
            [deployment("a", upstream_a.base_url)],
            [{"name": "gpt-4o", "targets": [{"deployment": "a"}], "pricing": PRICING}],
        )
    )
    management = [{"type": "compaction", "compact_threshold": 10}]
    async with gw.client() as client:
        if stream:
            events = [
                e
                async for e in await client.responses.create(
                    model="gpt-4o", input="hi", stream=True, context_management=management
                )
            ]  # type: ignore[arg-type]
            response = events[-1].response  # type: ignore[union-attr]
        else:
            response = await client.responses.create(model="gpt-4o", input="hi", context_management=management)  # type: ignore[arg-type]
        assert response.output[0].type == "compaction"
        await client.responses.create(
            model="gpt-4o",
            input="hi",  # under the threshold: a plain create
            context_management=[{"type": "compaction", "compact_threshold": 100_000}],
        )
    assert _tokens(gw, "compact") == 20 and _tokens(gw, "create") == 20
    cost = gw.registry.get_sample_value(
        "modelgate_cost_usd_total",
        {
            "model": "gpt-4o",
            "deployment": "a",
            "key": "test",
            "tenant": "_none",
            "end_user": "_none",
            "estimated": "false",
            "operation": "compact",
            "tier": "default",
        },
    )
    assert cost == pytest.approx((20 * 2.0 + WORDS * 8.0) / 1e6)
    await eventually(lambda: len([line for line in gw.log_lines() if line["route"] == "create"]) == 2, timeout=5)
    assert [line["operation"] for line in gw.log_lines() if line["route"] == "create"] == ["compact", "create"]
