"""Budgets and rate limits through the official SDK: 429s shaped as OpenAI's, x-ratelimit headers."""

from __future__ import annotations

import time
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta
from typing import Any

import openai
import pytest
import redis
from openai import AsyncOpenAI

from gateway_harness import GatewayHarness
from governed_gateway import KEYS, RATE_HEADERS, governed_doc, usage_cost
from redis_server import RedisServer


def client(gw: GatewayHarness, key: str = "team-a", retries: int = 0) -> AsyncOpenAI:
    return AsyncOpenAI(base_url=gw.base_url, api_key=KEYS[key], max_retries=retries)


def minute() -> int:
    return int(time.time() // 60)


async def refused(call: Awaitable[object]) -> openai.RateLimitError | None:
    """The 429 ``call`` got, or None when it was served (a minute boundary came in between)."""
    try:
        await call
    except openai.RateLimitError as exc:
        return exc
    return None


def fresh_minute(redis_server: RedisServer) -> int:
    """Start an attempt from empty counters: a previous attempt that a minute boundary spoiled may
    have run wholly in the new minute (its counts would spoil this one too). Returns the minute."""
    client = redis.Redis(port=redis_server.port, socket_timeout=5)
    try:
        client.flushall()
    finally:
        client.close()
    return minute()


async def test_exhausted_budget_is_429_insufficient_quota_and_spend_is_the_sum_of_costs(
    gateway: Any, redis_server: RedisServer
) -> None:
    gw = await gateway(governed_doc(redis_server.url, key_limits={"budget": {"usd": 0.05, "window": "daily"}}))
    spent = 0.0
    api = client(gw, retries=2)  # the SDK must not retry what x-should-retry forbids
    for _ in range(20):  # bounded: each request costs ~$0.02
        try:
            response = await api.responses.create(model="gpt-4o", input="hi", max_output_tokens=16)
        except openai.RateLimitError as caught:
            exc = caught
            break
        assert response.usage is not None
        spent += usage_cost(response.usage)
        await gw.state.governor.drain()  # reconciled before the next admission
    else:
        pytest.fail("the budget never ran out")
    assert exc.status_code == 429
    assert exc.code == "insufficient_quota" and exc.type == "insufficient_quota"
    assert exc.response.headers["x-should-retry"] == "false"
    assert int(exc.response.headers["Retry-After"]) > 0
    assert "team-a" in exc.message
    # Admitted while something was left: the overshoot is under one request's cost.
    assert 0.05 <= spent < 0.05 + 0.03
    gauge = gw.registry.get_sample_value("modelgate_governance_spend_usd", {"subject_kind": "key", "subject": "team-a"})
    assert gauge == pytest.approx(spent, abs=1e-6)
    hits = gw.registry.get_sample_value(
        "modelgate_governance_limit_hits_total", {"subject_kind": "key", "subject": "team-a", "limit": "budget"}
    )
    assert hits == 1  # one 429, not three: the SDK did not retry
    # Another key of the tenant has no budget of its own: it is served.
    other = await client(gw, "team-b").responses.create(model="gpt-4o", input="hi")
    assert other.status == "completed"


async def test_tokens_per_minute_is_429_with_headers(gateway: Any, redis_server: RedisServer) -> None:
    # A request uses ~9 tokens (1 input, 8 output) but reserves its max_output_tokens and more.
    gw = await gateway(governed_doc(redis_server.url, key_limits={"tokensPerMinute": 8}))
    for _ in range(3):  # a minute boundary between the two requests resets the counters: try again
        start = fresh_minute(redis_server)
        first = await client(gw).responses.with_raw_response.create(model="gpt-4o", input="hi", max_output_tokens=50)
        assert first.headers["x-ratelimit-limit-tokens"] == "8"
        assert first.headers["x-ratelimit-remaining-tokens"] == "0"  # the reservation is over the limit
        await gw.state.governor.drain()
        err = await refused(client(gw).responses.create(model="gpt-4o", input="hi", max_output_tokens=50))
        if minute() == start:
            break
    assert err is not None, "the second request was not refused"
    assert err.code == "rate_limit_exceeded" and err.type == "tokens"
    headers = err.response.headers
    assert headers["x-ratelimit-limit-tokens"] == "8"
    assert headers["x-ratelimit-remaining-tokens"] == "0"
    assert 1 <= int(headers["Retry-After"]) <= 60
    assert 0 < int(headers["retry-after-ms"]) <= 60_000
    assert headers["x-ratelimit-reset-tokens"].endswith("s")
    assert "x-ratelimit-limit-requests" not in headers  # nothing limits requests


async def test_requests_per_minute_and_headers_on_every_answer(gateway: Any, redis_server: RedisServer) -> None:
    from fake_responses_upstream import Behaviour, FakeResponsesUpstream

    fake = FakeResponsesUpstream("fake")
    await fake.start()
    try:
        gw = await gateway(
            governed_doc(
                redis_server.url,
                upstream=fake.base_url,
                key_limits={"requestsPerMinute": 4, "tokensPerMinute": 1_000_000},
            )
        )
        api = client(gw)
        for _ in range(3):
            start = fresh_minute(redis_server)
            plain = await api.responses.with_raw_response.create(model="gpt-4o", input="hi")
            stream = await api.responses.with_raw_response.create(model="gpt-4o", input="hi", stream=True)
            events = [event.type async for event in stream.parse()]
            fake.script.append(Behaviour(status=500))
            with pytest.raises(openai.InternalServerError) as failed:
                await api.responses.create(model="fake", input="hi")
            answers = [plain.headers, stream.headers, failed.value.response.headers]
            await api.responses.create(model="gpt-4o", input="hi")
            limited = await refused(api.responses.create(model="gpt-4o", input="hi"))
            if minute() == start:
                break
            await gw.state.governor.drain()
            fake.script.clear()
        assert events[-1] == "response.completed"
        assert limited is not None, "the fifth request was not refused"
        for headers in [*answers, limited.response.headers]:
            for name in RATE_HEADERS:
                assert name in headers, name
        assert [h["x-ratelimit-remaining-requests"] for h in answers] == ["3", "2", "1"]
        assert limited.response.headers["x-ratelimit-remaining-requests"] == "0"
        assert limited.code == "rate_limit_exceeded" and limited.type == "requests"
        # A key without limits pays nothing for them: no Redis call, no headers.
        free = await client(gw, "free").responses.with_raw_response.create(model="gpt-4o", input="hi")
        assert not any(name in free.headers for name in RATE_HEADERS)
    finally:
        await fake.close()


async def test_tenant_limit_is_shared_by_its_keys(gateway: Any, redis_server: RedisServer) -> None:
    gw = await gateway(governed_doc(redis_server.url, tenant_limits={"requestsPerMinute": 2}))
    for _ in range(3):
        start = fresh_minute(redis_server)
        await client(gw, "team-a").responses.create(model="gpt-4o", input="hi")
        await client(gw, "team-b").responses.create(model="gpt-4o", input="hi")
        caught = await refused(client(gw, "team-a").responses.create(model="gpt-4o", input="hi"))
        if minute() == start:
            break
    assert caught is not None and "tenant acme" in caught.message
    await client(gw, "free").responses.create(model="gpt-4o", input="hi")  # not in the tenant


async def test_concurrency_limit_across_requests(gateway: Any, redis_server: RedisServer) -> None:
    gw = await gateway(governed_doc(redis_server.url, key_limits={"maxConcurrentRequests": 1}, token_delay=0.02))
    api = client(gw)
    stream = await api.responses.create(model="gpt-4o", input="hi", stream=True)
    first = await anext(aiter(stream))  # the first request is admitted and in flight
    assert first.type == "response.created"
    with pytest.raises(openai.RateLimitError) as caught:
        await api.responses.create(model="gpt-4o", input="hi")
    assert "concurrent" in caught.value.message
    assert caught.value.response.headers["Retry-After"] == "1"
    async for _ in stream:
        pass
    await gw.state.governor.drain()  # released when reconciled
    assert (await api.responses.create(model="gpt-4o", input="hi")).status == "completed"


async def test_disconnected_stream_releases_its_slot(gateway: Any, redis_server: RedisServer) -> None:
    gw = await gateway(governed_doc(redis_server.url, key_limits={"maxConcurrentRequests": 1}, token_delay=0.05))
    api = client(gw)
    stream = await api.responses.create(model="gpt-4o", input="hi", stream=True)
    await anext(aiter(stream))
    await stream.close()  # the client goes away mid-stream

    async def served() -> bool:
        await gw.state.governor.drain()
        try:
            await api.responses.create(model="gpt-4o", input="hi")
        except openai.RateLimitError:
            return False
        return True

    for _ in range(100):  # bounded poll: the server notices the disconnect, then reconciles
        if await served():
            break
    else:
        pytest.fail("the disconnected stream kept its concurrency slot")


async def test_expired_key_is_refused(gateway: Any, redis_server: RedisServer) -> None:
    doc = governed_doc(redis_server.url)
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    doc["spec"]["auth"]["keys"][0]["expiresAt"] = past
    doc["spec"]["auth"]["keys"][1]["expiresAt"] = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    gw = await gateway(doc)
    with pytest.raises(openai.AuthenticationError) as caught:
        await client(gw, "team-a").responses.create(model="gpt-4o", input="hi")
    assert caught.value.code == "expired_api_key"
    assert (await client(gw, "team-b").responses.create(model="gpt-4o", input="hi")).status == "completed"
