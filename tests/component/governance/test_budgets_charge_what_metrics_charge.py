"""Budgets are charged what the cost metric charges: a request whose upstream reported no usage is
charged the tokenizer's estimate (not its reservation), and a background response is charged its
real usage when it ends (once, whoever sees the end), not what its create reserved."""

from __future__ import annotations

from typing import Any

import pytest
from openai import AsyncOpenAI

from fake_responses_upstream import Behaviour, FakeResponsesUpstream
from gateway_harness import GatewayHarness
from governed_gateway import KEYS, governed_doc
from raw_http_server import eventually
from redis_server import RedisServer

BUDGET = {"budget": {"usd": 1000, "window": "daily"}, "tokensPerMinute": 100_000_000}
SPEND = {"subject_kind": "key", "subject": "team-a"}


def client(gw: GatewayHarness) -> AsyncOpenAI:
    return AsyncOpenAI(base_url=gw.base_url, api_key=KEYS["team-a"], max_retries=0, timeout=10)


def metric_cost(gw: GatewayHarness, **wanted: str) -> float:
    """modelgate_cost_usd_total summed over the series of key team-a (and ``wanted`` labels)."""
    return sum(
        s.value
        for m in gw.registry.collect()
        if m.name == "modelgate_cost_usd"
        for s in m.samples
        if s.name.endswith("_total")
        and s.labels.get("key") == "team-a"
        and all(s.labels.get(k) == v for k, v in wanted.items())
    )


def spend(gw: GatewayHarness) -> float:
    return gw.registry.get_sample_value("modelgate_governance_spend_usd", SPEND) or 0.0


@pytest.mark.parametrize("stream", [False, True])
async def test_no_reported_usage_is_charged_the_estimate(gateway: Any, redis_server: RedisServer, stream: bool) -> None:
    fake = FakeResponsesUpstream("fake")
    await fake.start()
    try:
        gw = await gateway(governed_doc(redis_server.url, upstream=fake.base_url, key_limits=BUDGET))
        fake.script.append(Behaviour(omit_usage=True))
        api = client(gw)
        if stream:
            events = [e async for e in await api.responses.create(model="fake", input="hi", stream=True)]
            assert events[-1].type == "response.completed" and events[-1].response.usage is None
        else:
            assert (await api.responses.create(model="fake", input="hi")).usage is None
        # The observer accounts after the handler ended, so after it settled: then drain.
        await eventually(lambda: metric_cost(gw, estimated="true") > 0, timeout=10)  # the observer's estimate
        await gw.state.governor.drain()
        estimate = metric_cost(gw, estimated="true")
        # The reservation (4096 output tokens at $0.002) would be ~$8; the estimate is cents.
        assert estimate < 0.1
        assert spend(gw) == pytest.approx(estimate, abs=1e-9)
        assert gw.registry.get_sample_value("modelgate_governance_reserved_usd", SPEND) == 0.0
    finally:
        await fake.close()


async def test_a_background_response_is_charged_its_final_usage_once(gateway: Any, redis_server: RedisServer) -> None:
    fake = FakeResponsesUpstream("fake")
    await fake.start()
    try:
        doc = governed_doc(redis_server.url, upstream=fake.base_url, key_limits=BUDGET)
        doc["spec"]["observability"] = {"backgroundFollowUp": {"pollIntervalSeconds": 600}}  # only polls see it
        gw = await gateway(doc)
        api = client(gw)
        created = await api.responses.create(model="fake", input="hi", background=True, max_output_tokens=500)
        assert created.status == "queued" and created.usage is None
        await gw.state.background.idle()
        await gw.state.governor.drain()
        charged_at_create = spend(gw)
        assert charged_at_create > 0.9  # held at the reservation (500 output tokens) while it runs
        fake.complete()
        for _ in range(2):  # polled twice: counted once
            final = await api.responses.retrieve(created.id)
            assert final.status == "completed" and final.usage is not None
            await gw.state.background.idle()
            await gw.state.governor.drain()
        real = (final.usage.input_tokens * 1000 + final.usage.output_tokens * 2000) / 1e6
        assert real < 0.1
        assert metric_cost(gw, operation="background") == pytest.approx(real, abs=1e-9)
        assert spend(gw) == pytest.approx(real, abs=1e-9)
        assert gw.registry.get_sample_value("modelgate_governance_reserved_usd", SPEND) == 0.0
    finally:
        await fake.close()
