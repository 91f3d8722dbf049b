"""Budgets and rate limits hold per WebSocket turn: a turn over the key's limit is an ``error`` event (429).

Each ``response.create`` is admitted and settled like ``POST /v1/responses``: with a key allowed one
request at a time, a second lane's turn while the first runs is refused, the socket serves on, and
the slot comes back once the first turn ended.
"""

from __future__ import annotations

import asyncio
from typing import Any

from openai import AsyncOpenAI

from governed_gateway import KEYS, governed_doc
from redis_server import RedisServer
from websocket_client import TIMEOUT, events_until_final, final_response, turn


async def test_a_turn_over_the_concurrency_limit_is_refused_and_the_socket_serves_on(
    gateway: Any, redis_server: RedisServer
) -> None:
    gw = await gateway(governed_doc(redis_server.url, key_limits={"maxConcurrentRequests": 1}, token_delay=0.05))
    async with (
        AsyncOpenAI(base_url=gw.base_url, api_key=KEYS["team-a"], max_retries=0, timeout=10) as api,
        api.responses.connect() as conn,
    ):
        await conn.response.create(model="gpt-4o", input="first", stream_id="a")
        async with asyncio.timeout(TIMEOUT):
            async for event in conn:
                if event.type == "response.created":  # the first turn is admitted and in flight
                    break
        await conn.response.create(model="gpt-4o", input="second", stream_id="b")
        events = await events_until_final(conn, 2)
        finals = {e.stream_id: e for e in events if e.type in ("response.completed", "error")}
        assert finals["a"].type == "response.completed"
        refused = finals["b"]
        assert refused.type == "error" and refused.status == 429 and "concurrent" in refused.error.message
        await gw.state.governor.drain()  # the first turn's slot is released when reconciled
        final_response(await turn(conn, model="gpt-4o", input="third", stream_id="b"))
