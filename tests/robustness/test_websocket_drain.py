"""SIGTERM with client WebSockets open: idle sockets close at once with 1001, busy ones after their turns.

Real gateway processes and the official SDK's ``responses.connect()``; the mock provider streams
slowly. A turn that ends within the grace period is delivered whole, then its socket closes with
1001 (going away: the client reconnects to another replica); a turn that outlives the grace period
ends with a ``response.failed`` event (``gateway_shutting_down``, as an HTTP stream) before the close. Nothing waits with sleeps.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from openai import AsyncOpenAI
from websockets.exceptions import ConnectionClosed

from fake_responses_upstream import Behaviour, FakeResponsesUpstream
from gateway_process import GatewayProcess
from mock_config import API_KEY, mock_config
from raw_http_server import eventually
from websocket_client import FINAL, events_until_final

SLACK = 1.0  # scheduling delay allowed on a loaded machine


async def _close_code(conn: Any, timeout: float) -> tuple[int | None, float]:
    """The code the gateway closed with, and when (bounded)."""
    with pytest.raises(ConnectionClosed) as closed:
        async with asyncio.timeout(timeout):
            while True:  # bounded by the timeout
                await conn.recv()
    return (closed.value.rcvd.code if closed.value.rcvd is not None else None), time.monotonic()


async def _first_delta(conn: Any) -> list[Any]:
    events = []
    async with asyncio.timeout(10):
        async for event in conn:
            events.append(event)
            if event.type == "response.output_text.delta":
                return events
    return events


async def test_sigterm_closes_idle_sockets_at_once_and_busy_ones_after_their_turn(tmp_path: Path) -> None:
    grace = 5.0
    config = mock_config(tmp_path / "config.yaml", words=15, token_delay=0.1)  # a 1.5 s turn
    gateway = GatewayProcess(config, "--shutdown-grace-seconds", str(grace))
    await asyncio.to_thread(gateway.start)
    try:
        async with AsyncOpenAI(base_url=gateway.base_url, api_key=API_KEY, max_retries=0, timeout=10) as client:
            async with client.responses.connect() as idle, client.responses.connect() as busy:
                await busy.response.create(model="gpt-4o", input="hi")
                started = await _first_delta(busy)
                terminated = time.monotonic()
                gateway.terminate()
                code, closed_at = await _close_code(idle, 5)
                assert code == 1001 and closed_at - terminated < 1.0 + SLACK  # not after the drain
                rest = await events_until_final(busy)
                assert rest[-1].type == "response.completed"
                text = "".join(e.delta for e in [*started, *rest] if e.type == "response.output_text.delta")
                assert text == " ".join(f"w{i}" for i in range(15))
                code, _ = await _close_code(busy, 5)
                assert code == 1001
        assert await asyncio.to_thread(gateway.wait, 30) == 0
        assert time.monotonic() - terminated < grace  # nothing left: no wait for the grace period
    finally:
        gateway.stop()


async def test_turns_that_outlive_the_grace_period_end_with_response_failed_or_an_error_event(
    tmp_path: Path,
) -> None:
    grace = 1.0
    hanging = FakeResponsesUpstream("hanging")
    await hanging.start()
    hanging.script = [Behaviour(hang=True)]
    config = mock_config(tmp_path / "config.yaml", words=100, token_delay=0.1, upstreams={"hanging": hanging.base_url})
    gateway = GatewayProcess(config, "--shutdown-grace-seconds", str(grace))
    await asyncio.to_thread(gateway.start)
    try:
        async with AsyncOpenAI(base_url=gateway.base_url, api_key=API_KEY, max_retries=0, timeout=10) as client:
            async with client.responses.connect() as conn:
                await conn.response.create(model="gpt-4o", input="hi", stream_id="streaming")  # a 10 s turn
                await conn.response.create(model="hanging", input="hi", stream_id="waiting")  # never answered
                await _first_delta(conn)
                await eventually(lambda: len(hanging.creates) == 1, timeout=10)
                terminated = time.monotonic()
                gateway.terminate()
                finals = {e.stream_id: e for e in await events_until_final(conn, 2) if e.type in FINAL}
                assert grace - 0.1 <= time.monotonic() - terminated <= grace + SLACK
                cut = finals["streaming"]  # events had reached the client: as an HTTP stream cut after its first byte
                assert cut.type == "response.failed" and cut.response.error.code == "gateway_shutting_down"
                refused = finals["waiting"]  # nothing had: an error event, as an HTTP 503
                assert refused.type == "error" and refused.status == 503
                assert refused.error.code == "gateway_shutting_down"
                code, _ = await _close_code(conn, 5)
                assert code == 1001
        assert await asyncio.to_thread(gateway.wait, 30) == 0
        turns = [line for line in gateway.log_lines() if line.get("transport") == "websocket"]
        assert (
            sorted((t["status"], t["error_type"], t["client_disconnected"]) for t in turns)
            == [(503, "gateway_shutdown", False)] * 2
        )
    finally:
        gateway.stop()
        await hanging.close()
