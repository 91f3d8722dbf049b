"""Two gateway processes, one Redis, one budget, hammered concurrently: the fleet-wide spend passes
the budget by less than one request's cost and equals the sum of the costs of the answers."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import openai
import pytest
import redis
import yaml

from gateway_process import GatewayProcess
from governed_gateway import KEYS, governed_doc, usage_cost
from modelgate_gateway.config import BudgetWindow, counters
from redis_server import RedisServer, redis_server  # noqa: F401  (fixture)

pytestmark = pytest.mark.e2e

BUDGET_USD = 0.5
WORKERS = 12


def budget_counters(server: RedisServer) -> dict[str, int]:
    window = counters.budget_window(BudgetWindow.TOTAL, 0)
    raw = redis.Redis(port=server.port).hgetall(counters.budget_key(counters.subject_id("key", "team-a"), window.id))
    return {k.decode(): int(v) for k, v in raw.items()}


async def test_budget_holds_across_two_processes(tmp_path: Path, redis_server: RedisServer) -> None:  # noqa: F811
    doc = governed_doc(redis_server.url, key_limits={"budget": {"usd": BUDGET_USD, "window": "total"}})
    doc["spec"]["responseIds"] = {}
    config = tmp_path / "gateway.yaml"
    config.write_text(yaml.safe_dump(doc))
    gateways = [GatewayProcess(config), GatewayProcess(config)]
    await asyncio.gather(*(asyncio.to_thread(g.start) for g in gateways))
    costs: list[float] = []
    refused = 0
    served = [0, 0]
    try:
        clients = [openai.AsyncOpenAI(base_url=g.base_url, api_key=KEYS["team-a"], max_retries=0) for g in gateways]

        async def worker(index: int) -> None:
            nonlocal refused
            api = clients[index % 2]
            for _ in range(200):  # bounded; ends at the first 429
                try:
                    if index % 3 == 0:
                        stream = await api.responses.create(model="gpt-4o", input="hi", max_output_tokens=16,
                                                            stream=True)
                        final = [e async for e in stream][-1]
                        assert final.type == "response.completed"
                        usage = final.response.usage
                    else:
                        usage = (await api.responses.create(model="gpt-4o", input="hi", max_output_tokens=16)).usage
                except openai.RateLimitError as exc:
                    assert exc.code == "insufficient_quota"
                    refused += 1
                    return
                assert usage is not None
                costs.append(usage_cost(usage))
                served[index % 2] += 1

        await asyncio.wait_for(asyncio.gather(*(worker(i) for i in range(WORKERS))), 120)
        deadline = time.monotonic() + 10
        while (found := budget_counters(redis_server)).get("reserved", 1) != 0:  # reconciles run after answers
            assert time.monotonic() < deadline, found
            await asyncio.sleep(0.02)
    finally:
        await asyncio.gather(*(asyncio.to_thread(g.stop) for g in gateways))
    spent = found["spent"] / 1e9
    assert refused == WORKERS
    assert spent == pytest.approx(sum(costs), abs=len(costs) * 1e-9)
    assert BUDGET_USD <= spent < BUDGET_USD + max(costs)  # the documented bound (docs/governance.md)
    assert min(served) > 0  # both processes took part


@pytest.mark.parametrize("policy", ["fail-open", "fail-closed"])
async def test_redis_killed_mid_run_applies_the_policy_without_a_hang(
        tmp_path: Path, redis_server: RedisServer, policy: str) -> None:  # noqa: F811
    """Clients hammer both processes; Redis dies under them. Every request still ends, quickly:
    served (fail-open) or 503 limits_unavailable (fail-closed), never a hang or another error."""
    doc = governed_doc(redis_server.url, key_limits={"requestsPerMinute": 1_000_000},
                       onRedisFailure=policy, redisTimeoutSeconds=0.5)
    doc["spec"]["responseIds"] = {}
    config = tmp_path / "gateway.yaml"
    config.write_text(yaml.safe_dump(doc))
    gateways = [GatewayProcess(config), GatewayProcess(config)]
    await asyncio.gather(*(asyncio.to_thread(g.start) for g in gateways))
    outcomes: list[str] = []
    killed = asyncio.Event()
    try:
        clients = [openai.AsyncOpenAI(base_url=g.base_url, api_key=KEYS["team-a"], max_retries=0, timeout=10)
                   for g in gateways]

        async def worker(index: int) -> None:
            api = clients[index % 2]
            after_kill = 0
            while after_kill < 5:  # bounded: five answers after Redis died, then stop
                started = time.monotonic()
                try:
                    await api.responses.create(model="gpt-4o", input="hi", max_output_tokens=16)
                    outcomes.append("served")
                except openai.InternalServerError as exc:
                    assert exc.status_code == 503 and exc.code == "limits_unavailable", exc
                    outcomes.append("refused")
                assert time.monotonic() - started < 5.0
                if killed.is_set():
                    after_kill += 1
                elif len(outcomes) >= 20:
                    redis_server.process.kill()
                    killed.set()

        await asyncio.wait_for(asyncio.gather(*(worker(i) for i in range(8))), 60)
    finally:
        await asyncio.gather(*(asyncio.to_thread(g.stop) for g in gateways))
    tail = outcomes[-8:]  # the last answer of each worker, well after the kill
    assert set(tail) == ({"served"} if policy == "fail-open" else {"refused"}), outcomes
