"""A client that stops reading holds the upstream back: the gateway buffers a bounded number of bytes.

A client opens a WebSocket (or a streaming HTTP request), starts a long turn of large deltas and
reads nothing, on a socket with a small receive buffer. The upstream (over HTTP, or over the
Responses API's WebSocket mode) must stall in a write after the kernel's buffers and a bounded
amount in the gateway are full. Every byte the upstream wrote is accounted for: in the kernel's
socket queues (``/proc/net/tcp``), or held by the gateway; the client read none. Then the client
reads, and the whole answer arrives, in order.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from flooding_upstream import FloodingUpstream, flood_texts
from gateway_harness import API_KEY, config_doc, deployment
from slow_clients import (
    client_frame,
    kernel_queued,
    open_slow,
    post_stream,
    sse_events_until_final,
    websocket_events_until_final,
    websocket_handshake,
)

ITEMS, DELTAS, DELTA_BYTES = 8, 56, 16 * 1024
"""A 35 MiB stream: 8 message items of 56 deltas of 16 KiB (each item's done events repeat its 896 KiB)."""
READ_AHEAD = 3 * 1024 * 1024 // 2
"""What the gateway reads ahead of a client that reads nothing, besides the events it holds (see
docs/operations.md): the upstream connection's unread bytes (reading pauses past 1 MiB, plus one
read of up to 256 KiB) or the upstream socket's 16 queued frames, and the client socket's 64 KiB."""
QUIET_SECONDS = 0.5
"""How long the upstream must sit in one write, with no byte moving, to count as stalled."""


@pytest.fixture
async def flooding() -> AsyncIterator[FloodingUpstream]:
    fake = FloodingUpstream(flood_texts(ITEMS, DELTAS, DELTA_BYTES))
    await fake.start()
    yield fake
    await fake.close()


async def _stalled(upstream: FloodingUpstream, timeout: float = 20) -> None:
    """Wait (bounded) until the upstream sits in a write that makes no progress for ``QUIET_SECONDS``."""
    deadline = time.monotonic() + timeout
    handed, since = upstream.handed, time.monotonic()
    while time.monotonic() < deadline:
        assert not upstream.finished, f"the upstream wrote all {upstream.total} bytes: nothing held it back"
        now = time.monotonic()
        if upstream.handed != handed or not upstream.writing:
            handed, since = upstream.handed, now
        elif now - since >= QUIET_SECONDS:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"the upstream never stalled (wrote {upstream.handed} of {upstream.total} bytes)")


def _held_by_gateway(upstream: FloodingUpstream, ports: set[int]) -> tuple[int, int]:
    """(bytes the gateway holds, bytes in kernel queues): what left the upstream and is in no kernel queue.

    Read with no await in between: everything here runs on this loop, so nothing moves meanwhile.
    """
    assert upstream.transport is not None
    left_upstream = upstream.handed - upstream.transport.get_write_buffer_size()
    queued = kernel_queued(ports)
    return left_upstream - queued, queued


@pytest.mark.parametrize("upstream_socket", [False, True], ids=["http-upstream", "websocket-upstream"])
async def test_a_websocket_client_that_stops_reading_stalls_the_upstream(
    gateway: Any, flooding: FloodingUpstream, upstream_socket: bool
) -> None:
    dep = deployment("f", flooding.base_url, websocket=upstream_socket)
    gw = await gateway(config_doc([dep], [{"name": "gpt-4o", "targets": [{"deployment": "f"}]}]))
    assert gw.server.port is not None and flooding.server is not None
    sock = await open_slow(gw.server.port)
    try:
        await websocket_handshake(sock, API_KEY)
        create = client_frame({"type": "response.create", "model": "gpt-4o", "input": "go"})
        await asyncio.get_running_loop().sock_sendall(sock, create)
        await _stalled(flooding)
        held, queued = _held_by_gateway(flooding, {gw.server.port, flooding.server.port})
        _assert_bounded(flooding, held, queued)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)  # read at last, and fast
        events = await websocket_events_until_final(sock)
    finally:
        sock.close()
    _assert_whole(events)


async def test_an_sse_client_that_stops_reading_stalls_the_upstream(gateway: Any, flooding: FloodingUpstream) -> None:
    dep = deployment("f", flooding.base_url)
    gw = await gateway(config_doc([dep], [{"name": "gpt-4o", "targets": [{"deployment": "f"}]}]))
    assert gw.server.port is not None and flooding.server is not None
    sock = await open_slow(gw.server.port)
    try:
        await post_stream(sock, API_KEY, {"model": "gpt-4o", "input": "go", "stream": True})
        await _stalled(flooding)
        held, queued = _held_by_gateway(flooding, {gw.server.port, flooding.server.port})
        _assert_bounded(flooding, held, queued)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        events = await sse_events_until_final(sock)
    finally:
        sock.close()
    _assert_whole(events)


def _assert_bounded(upstream: FloodingUpstream, held: int, queued: int) -> None:
    """The gateway holds its read-ahead and at most two events: one being written, one being assembled."""
    bound = READ_AHEAD + 2 * upstream.largest
    assert held <= bound, f"the gateway held {held} bytes (bound {bound}; {queued} in kernel queues)"


def _assert_whole(events: list[dict[str, Any]]) -> None:
    assert events[-1]["type"] == "response.completed", events[-1]["type"]
    deltas = [event["delta"] for event in events if event["type"] == "response.output_text.delta"]
    assert deltas == [delta for item in flood_texts(ITEMS, DELTAS, DELTA_BYTES) for delta in item]
    assert len(events[-1]["response"]["output"]) == ITEMS
