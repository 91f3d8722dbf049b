"""Driving the gateway's WebSocket mode through the official SDK (``client.responses.connect()``), bounded.

Every wait is bounded (the SDK would wait forever for an event that never comes), and the SDK
client is made with a short timeout and no retries.
"""

from __future__ import annotations

import asyncio
from typing import Any

from websockets.exceptions import ConnectionClosed

FINAL = ("response.completed", "response.failed", "response.incomplete", "error")
TIMEOUT = 10.0


async def events_until_final(conn: Any, count: int = 1, timeout: float = TIMEOUT) -> list[Any]:
    """Events received until ``count`` final events (completed, failed, incomplete or error) arrived."""
    events: list[Any] = []
    finals = 0
    async with asyncio.timeout(timeout):
        async for event in conn:
            events.append(event)
            if event.type in FINAL:
                finals += 1
                if finals == count:
                    break
    return events


async def turn(conn: Any, timeout: float = TIMEOUT, **create: Any) -> list[Any]:
    """Send one ``response.create`` and return its events up to the final one."""
    await conn.response.create(**create)
    return await events_until_final(conn, 1, timeout)


def final_response(events: list[Any]) -> Any:
    """The response of a turn's final event (fails the test on an ``error`` event, showing it)."""
    last = events[-1]
    assert last.type == "response.completed", last
    return last.response


async def close_code(conn: Any, timeout: float = TIMEOUT) -> int | None:
    """The code the gateway closed the socket with (reads until the close, bounded)."""
    try:
        async with asyncio.timeout(timeout):
            while True:  # bounded by the timeout
                await conn.recv()
    except ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd is not None else None
