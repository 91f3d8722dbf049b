"""A limited request costs one Redis round trip: its reconciliation rides in the pipeline of the next
admission (reconciliations first, then the reservation), or goes on its own after a short wait."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from openai import AsyncOpenAI

from governed_gateway import KEYS, governed_doc
from redis_server import RedisServer
from turn_counting_proxy import TurnCountingProxy

LIMITS = {
    "requestsPerMinute": 1_000_000,
    "tokensPerMinute": 100_000_000,
    "maxConcurrentRequests": 4,
    "budget": {"usd": 1000, "window": "total"},
}
N = 10


async def test_each_limited_request_costs_one_round_trip(
    gateway: Any, redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No timer flush within the test: only admissions (and the final drain) carry reconciliations.
    monkeypatch.setattr("modelgate_gateway.governance.batching.SETTLE_BATCH_SECONDS", 60.0)
    async with TurnCountingProxy(target_port=redis_server.port, marker=b"{modelgate:gov}") as proxy:
        gw = await gateway(governed_doc(proxy.url, key_limits=LIMITS))
        api = AsyncOpenAI(base_url=gw.base_url, api_key=KEYS["team-a"], max_retries=0, timeout=10)
        for _ in range(2):  # warm-up: the connection and the scripts' first load
            await api.responses.create(model="gpt-4o", input="hi", max_output_tokens=16)
        await gw.state.governor.drain()
        before = proxy.turns
        costs = 0.0
        for _ in range(N):  # sequential: every admission but the first carries the previous reconciliation
            response = await api.responses.create(model="gpt-4o", input="hi", max_output_tokens=16)
            assert response.usage is not None
            costs += (response.usage.input_tokens * 1000 + response.usage.output_tokens * 2000) / 1e6
        await gw.state.governor.drain()
        assert proxy.turns - before == N + 1  # N admissions and the last reconciliation (2N before)
        spend = gw.registry.get_sample_value(
            "modelgate_governance_spend_usd", {"subject_kind": "key", "subject": "team-a"}
        )
        reserved = gw.registry.get_sample_value(
            "modelgate_governance_reserved_usd", {"subject_kind": "key", "subject": "team-a"}
        )
        assert reserved == 0.0
        assert spend is not None and spend >= costs  # the warm-up's spend is in too
        await api.close()


async def test_a_reconciliation_goes_on_its_own_when_no_admission_comes(
    gateway: Any, redis_server: RedisServer
) -> None:
    gw = await gateway(governed_doc(redis_server.url, key_limits=LIMITS))
    api = AsyncOpenAI(base_url=gw.base_url, api_key=KEYS["team-a"], max_retries=0, timeout=10)
    await api.responses.create(model="gpt-4o", input="hi", max_output_tokens=16)
    labels = {"subject_kind": "key", "subject": "team-a"}
    deadline = time.monotonic() + 5
    while gw.registry.get_sample_value("modelgate_governance_reserved_usd", labels) != 0.0:  # no drain()
        assert time.monotonic() < deadline, "the reconciliation was never sent"
        await asyncio.sleep(0.01)
    assert (gw.registry.get_sample_value("modelgate_governance_spend_usd", labels) or 0) > 0
    await api.close()
