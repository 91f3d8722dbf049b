"""Requests of a limited key (admitted, reconciled, refused with 429, or served while Redis is
down) leave no reference cycle behind: the collector is off while they run, then a collection
must find nothing of the request path (see test_no_reference_cycles.py for why it matters)."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path
from typing import Any

import openai
import pytest

from gateway_harness import GatewayHarness
from governed_gateway import KEYS, governed_doc
from redis_server import running_redis_server
from reference_cycles import left_in_cycles, run_on_uvloop

N = 12
LIMITS = {
    "admitted": {"requestsPerMinute": 1_000_000, "budget": {"usd": 1000, "window": "daily"}},
    "refused-budget": {"budget": {"usd": 0.000001, "window": "total"}},
    "redis-down-fail-open": {"requestsPerMinute": 1_000_000},
}


async def _one(harness: GatewayHarness, stream: bool) -> str:
    client = openai.AsyncOpenAI(base_url=harness.base_url, api_key=KEYS["team-a"], max_retries=0)
    try:
        if stream:
            events = [e.type async for e in await client.responses.create(model="gpt-4o", input="hi", stream=True)]
            return events[-1]
        await client.responses.create(model="gpt-4o", input="hi", max_output_tokens=16)
        return "ok"
    except openai.RateLimitError:
        return "429"
    finally:
        await client.close()


async def _scenario(tmp: Path, name: str) -> list[object]:
    with running_redis_server(tmp) as redis:
        harness = GatewayHarness(tmp, governed_doc(redis.url, key_limits=LIMITS[name]))
        await harness.start()
        try:
            expect = "429" if name == "refused-budget" else "ok"
            if name == "refused-budget":
                assert await _one(harness, False) == "ok"  # spends the whole budget
                await harness.state.governor.drain()
            if name == "redis-down-fail-open":
                redis.process.kill()
                redis.process.wait(5)
            for _ in range(3):  # warm-up
                assert await _one(harness, False) == expect

            async def requests() -> None:
                for index in range(N):
                    stream = index % 2 == 1 and expect == "ok"
                    assert await _one(harness, stream) == ("response.completed" if stream else expect)
                await harness.state.governor.drain()

            return await left_in_cycles(requests)
        finally:
            await harness.close()


@pytest.mark.parametrize("name", list(LIMITS))
def test_limited_requests_leave_no_reference_cycles(name: str, tmp_path: Path) -> None:
    left: list[Any] = run_on_uvloop(lambda: _scenario(tmp_path, name))
    summary = Counter(type(obj).__name__ for obj in left)
    if left:
        print(f"{name}: {summary.most_common(12)}", file=sys.stderr)
    assert not left, f"{len(left)} objects of {N} '{name}' requests were left in cycles: {summary.most_common(8)}"
