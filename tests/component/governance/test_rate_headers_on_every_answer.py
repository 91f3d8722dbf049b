"""Every answer to a rate-limited key carries x-ratelimit headers: retrieve, stream-retrieve, delete,
cancel, input_items, models, and errors once the key is known (4xx and 5xx), showing the key's
counts as they stand without reserving anything. Keys without RPM/TPM limits get none."""

from __future__ import annotations

import time
from typing import Any

import openai
import pytest
import redis
from openai import AsyncOpenAI

from fake_responses_upstream import FakeResponsesUpstream
from gateway_harness import GatewayHarness
from governed_gateway import KEYS, RATE_HEADERS, governed_doc
from redis_server import RedisServer

LIMITS = {"requestsPerMinute": 50, "tokensPerMinute": 1_000_000}


def client(gw: GatewayHarness, key: str = "team-a") -> AsyncOpenAI:
    return AsyncOpenAI(base_url=gw.base_url, api_key=KEYS[key], max_retries=0, timeout=10)


async def _answers(gw: GatewayHarness, fake: FakeResponsesUpstream, key: str) -> dict[str, Any]:
    """Headers of one answer of every kind (a create first, so there is a response to follow up)."""
    api = client(gw, key)
    created = await api.responses.create(model="fake", input="hi", max_output_tokens=16, background=True)
    await gw.state.governor.drain()
    out: dict[str, Any] = {}
    out["retrieve"] = (await api.responses.with_raw_response.retrieve(created.id)).headers
    async with api.responses.with_streaming_response.retrieve(created.id, stream=True) as streamed:
        out["stream-retrieve"] = streamed.headers
        async for _ in streamed.iter_lines():
            pass
    out["input_items"] = (await api.responses.input_items.with_raw_response.list(created.id)).headers
    out["models"] = (await api.models.with_raw_response.list()).headers
    with pytest.raises(openai.NotFoundError) as unknown_model:
        await api.responses.create(model="no-such-model", input="hi")
    out["404 unknown model"] = unknown_model.value.response.headers
    with pytest.raises(openai.NotFoundError) as unknown_id:
        await api.responses.retrieve("resp_not_one_of_ours")
    out["404 unknown id"] = unknown_id.value.response.headers
    with pytest.raises(openai.BadRequestError) as bad_body:
        await api.responses.create(model="gpt-4o", input="hi", extra_body={"stream": "yes"})
    out["400 bad body"] = bad_body.value.response.headers
    out["cancel"] = (await api.responses.with_raw_response.cancel(created.id)).headers
    out["delete"] = (await api.responses.with_raw_response.delete(created.id)).headers
    await fake.close()  # the upstream is gone: a 5xx
    with pytest.raises(openai.APIStatusError) as upstream_gone:
        await api.responses.retrieve(created.id)
    assert upstream_gone.value.status_code >= 500
    out["5xx retrieve"] = upstream_gone.value.response.headers
    return out


async def _answers_of(gateway: Any, redis_url: str, key: str, limits: dict[str, Any]) -> dict[str, Any]:
    fake = FakeResponsesUpstream("fake")
    await fake.start()
    try:
        gw = await gateway(governed_doc(redis_url, upstream=fake.base_url, key_limits=limits))
        return await _answers(gw, fake, key)
    finally:
        await fake.close()


async def test_every_answer_to_a_rate_limited_key_carries_its_current_counts(
    gateway: Any, redis_server: RedisServer
) -> None:
    for _ in range(3):  # a minute boundary in between resets the counts: try again
        start = int(time.time() // 60)
        flush = redis.Redis(port=redis_server.port, socket_timeout=5)
        flush.flushall()
        flush.close()
        answers = await _answers_of(gateway, redis_server.url, "team-a", LIMITS)
        if int(time.time() // 60) == start:
            break
    for kind, headers in answers.items():
        for name in RATE_HEADERS:
            assert name in headers, f"{name} missing on {kind}"
        assert headers["x-ratelimit-limit-requests"] == "50"
        assert headers["x-ratelimit-limit-tokens"] == "1000000"
    # Only the create counted; nothing else reserved anything.
    remaining = {kind: h["x-ratelimit-remaining-requests"] for kind, h in answers.items()}
    assert remaining == dict.fromkeys(answers, "49")


async def test_keys_without_rate_limits_get_no_headers(gateway: Any, redis_server: RedisServer) -> None:
    # team-a has a budget only: nothing per minute to show; free has no limits at all.
    for key in ("team-a", "free"):
        answers = await _answers_of(gateway, redis_server.url, key, {"budget": {"usd": 100}})
        for kind, headers in answers.items():
            assert not any(name in headers for name in RATE_HEADERS), (key, kind)
