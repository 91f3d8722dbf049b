"""Redis down: the configured policy within the timeout, never a hang; back to limits when it returns."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from typing import Any

import openai
import pytest
from openai import AsyncOpenAI

from governed_gateway import KEYS, governed_doc
from redis_server import RedisServer

BOUND_SECONDS = 5.0
"""Far above the 0.5 s Redis timeout, far below a hang."""


def client(base_url: str) -> AsyncOpenAI:
    return AsyncOpenAI(base_url=base_url, api_key=KEYS["team-a"], max_retries=0)


async def test_fail_open_serves_and_counts_when_redis_is_killed(gateway: Any, redis_server: RedisServer) -> None:
    gw = await gateway(governed_doc(redis_server.url, key_limits={"requestsPerMinute": 1000},
                                    onRedisFailure="fail-open", redisTimeoutSeconds=0.5))
    api = client(gw.base_url)
    assert (await api.responses.create(model="gpt-4o", input="hi")).status == "completed"
    redis_server.process.kill()
    redis_server.process.wait(timeout=5)
    started = time.monotonic()
    raw = await asyncio.wait_for(api.responses.with_raw_response.create(model="gpt-4o", input="hi"), BOUND_SECONDS)
    assert raw.parse().status == "completed"
    assert "x-ratelimit-limit-requests" not in raw.headers  # nothing was counted
    assert time.monotonic() - started < BOUND_SECONDS
    failures = gw.registry.get_sample_value("modelgate_governance_redis_failures_total",
                                            {"operation": "reserve", "policy": "fail-open"})
    assert failures is not None and failures >= 1


async def test_fail_closed_answers_503_when_redis_hangs(gateway: Any, redis_server: RedisServer) -> None:
    gw = await gateway(governed_doc(redis_server.url, key_limits={"requestsPerMinute": 1000},
                                    onRedisFailure="fail-closed", redisTimeoutSeconds=0.3,
                                    retryRedisAfterSeconds=0))
    api = client(gw.base_url)
    assert (await api.responses.create(model="gpt-4o", input="hi")).status == "completed"
    os.kill(redis_server.process.pid, signal.SIGSTOP)  # alive but silent: only the timeout saves us
    try:
        started = time.monotonic()
        with pytest.raises(openai.InternalServerError) as caught:
            await asyncio.wait_for(api.responses.create(model="gpt-4o", input="hi"), BOUND_SECONDS)
        assert time.monotonic() - started < BOUND_SECONDS
        assert caught.value.status_code == 503
        assert caught.value.code == "limits_unavailable"
        assert caught.value.response.headers["Retry-After"] == "1"
        free = AsyncOpenAI(base_url=gw.base_url, api_key=KEYS["free"], max_retries=0)
        assert (await free.responses.create(model="gpt-4o", input="hi")).status == "completed"  # no limits
    finally:
        os.kill(redis_server.process.pid, signal.SIGCONT)
    for _ in range(50):  # bounded: the stalled connection is dropped, a new one answers
        try:
            response = await api.responses.create(model="gpt-4o", input="hi")
        except openai.InternalServerError:
            continue
        assert response.status == "completed"
        break
    else:
        pytest.fail("limits stayed unavailable after Redis came back")
