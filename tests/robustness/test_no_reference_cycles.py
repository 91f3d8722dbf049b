"""No request leaves a reference cycle behind, on the success path or any failure path.

The gateway freezes its start-up heap and raises the young-generation threshold (``main.py``), so
the cyclic collector runs rarely: anything a request leaves in a cycle (an exception whose frames
hold the connection that holds the exception, a timer that still points at a lost connection, a
send buffer inside a transport <-> protocol loop) stays in memory until a full collection, and an
upstream outage then grows the heap by the size of every failed request. Here the collector is
disabled while N requests of one kind go through the real gateway app (real sockets, the official
SDK as the client, uvloop as in production) against a misbehaving upstream; afterwards a
collection must find nothing that the gateway, aiohttp's server or the upstream client left.
Hostile clients (raw sockets, the client-facing listener with its timeouts) get the same check.
"""

from __future__ import annotations

import asyncio
import socket
import sys
import types
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai
import pytest
from aiohttp import web

from gateway_harness import API_KEY, GatewayHarness, config_doc, deployment
from misbehaving_upstream import Fault, MisbehavingUpstream
from modelgate_gateway.app import RELOADER
from modelgate_gateway.server.clientconn import ClientLimits, ConnectionGuard, GuardedSite
from raw_http_server import eventually
from reference_cycles import left_in_cycles, run_on_uvloop

N = 12  # requests per kind while the collector is off
LARGE_BODY = 4 * 1024 * 1024  # far more than loopback socket buffers take from a peer that never reads


@dataclass(frozen=True)
class Kind:
    fault: Fault
    stream: bool = False
    expect: int | str | None = 200
    """What the client sees: an HTTP status, a stream's last event type, or None (it gave up first)."""
    refused: bool = False
    body_bytes: int = 0
    client_timeout: float | None = None
    disconnect_mid_stream: bool = False
    chat_upstream: bool = False
    idle_seconds: float = 10.0
    """The deployments' first-byte and stream-idle timeouts (short only where the test waits them out)."""
    extra_body: dict[str, Any] | None = None


KINDS = {
    "success": Kind(Fault.NONE),
    "success-stream": Kind(Fault.NONE, stream=True, expect="response.completed"),
    "connection-refused": Kind(Fault.NONE, expect=502, refused=True),
    "reset-before-headers": Kind(Fault.RESET_BEFORE_HEADERS, expect=502),
    "reset-mid-body": Kind(Fault.RESET_MID_BODY, expect=502),
    "short-body": Kind(Fault.SHORT_BODY, expect=502),
    "timeout-before-first-byte": Kind(Fault.HANG, expect=504, idle_seconds=0.1),
    "never-reads-large-body": Kind(Fault.NEVER_READ, expect=504, body_bytes=LARGE_BODY, idle_seconds=0.1),
    "status-500": Kind(Fault.STATUS_500, expect=502),
    "status-400-passed-through": Kind(Fault.STATUS_400, expect=400),
    "redirect": Kind(Fault.REDIRECT, expect=502),
    "reset-mid-stream": Kind(Fault.RESET_MID_STREAM, stream=True, expect="response.failed"),
    "stall-mid-stream": Kind(Fault.STALL_MID_STREAM, stream=True, expect="response.failed", idle_seconds=0.1),
    "client-disconnects-mid-stream": Kind(Fault.STALL_MID_STREAM, stream=True, expect=None,
                                          disconnect_mid_stream=True),
    "client-gives-up-waiting": Kind(Fault.HANG, expect=None, client_timeout=0.2),
    "untranslatable-for-chat-upstream": Kind(Fault.NONE, expect=400, chat_upstream=True,
                                             extra_body={"frobnicate": True}),
}


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _one(harness: GatewayHarness, kind: Kind, payload: dict[str, Any]) -> int | str | None:
    client = harness.client(timeout=kind.client_timeout or 30.0)
    try:
        if not kind.stream:
            try:
                await client.responses.create(**payload)
                return 200
            except openai.APIStatusError as exc:
                return exc.status_code
            except openai.APITimeoutError:
                return None
        last = None
        stream = await client.responses.create(stream=True, **payload)
        async with stream:
            async for event in stream:
                if kind.disconnect_mid_stream and event.type == "response.output_text.delta":
                    return None  # leaving the block closes the connection mid-stream
                last = event.type
        return last
    finally:
        await client.close()


async def _scenario(tmp: Path, kind: Kind) -> list[object]:
    async with MisbehavingUpstream() as upstream:
        url = f"http://127.0.0.1:{_closed_port()}/v1" if kind.refused else upstream.url()
        extra: dict[str, Any] = {"timeouts": {"firstByteSeconds": kind.idle_seconds,
                                              "streamIdleSeconds": kind.idle_seconds}}
        if kind.chat_upstream:
            extra["api"] = "chat_completions"
        doc = config_doc(
            [deployment("a", url, **extra), deployment("b", url, **extra)],
            [{"name": "m", "targets": [{"deployment": "a"}, {"deployment": "b"}],
              "retry": {"maxAttempts": 2}, "cooldown": {"consecutiveFailures": 1000}}],
            limits={"maxRequestBodyBytes": 8 * 1024 * 1024},
        )
        harness = GatewayHarness(tmp, doc)
        await harness.start()
        try:
            payload: dict[str, Any] = {"model": "m", "input": "x" * max(1024, kind.body_bytes)}
            if kind.extra_body:
                payload["extra_body"] = kind.extra_body
            upstream.fault = kind.fault
            for _ in range(3):  # warm-up: lazy imports, caches, first connections
                assert await _one(harness, kind, payload) == kind.expect
            await eventually(lambda: len(harness.log_lines()) == 3, timeout=5)

            async def requests() -> None:
                for _ in range(N):
                    assert await _one(harness, kind, payload) == kind.expect
                await eventually(lambda: len(harness.log_lines()) == 3 + N, timeout=5)

            return await left_in_cycles(requests)
        finally:
            await harness.close()


@pytest.mark.parametrize("name", list(KINDS))
def test_requests_leave_no_reference_cycles(name: str, tmp_path: Path) -> None:
    kind = KINDS[name]
    left = run_on_uvloop(lambda: _scenario(tmp_path, kind))
    summary = Counter(type(obj).__name__ for obj in left)
    frames = Counter(f"{o.f_code.co_name} ({o.f_code.co_filename.rsplit('/', 1)[-1]})"
                     for o in left if isinstance(o, types.FrameType))
    if left:
        print(f"{name}: {summary.most_common(12)}; frames: {frames.most_common(8)}", file=sys.stderr)
    assert not left, f"{len(left)} objects of {N} '{name}' requests were left in reference cycles: " \
                     f"{summary.most_common(8)}; frames {frames.most_common(5)}"


_BODY = b'{"model":"m","input":"' + b"x" * 1000 + b'"}'
_POST = (b"POST /v1/responses HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer " + API_KEY.encode()
         + b"\r\nContent-Type: application/json\r\n")
HOSTILE = {  # what the client sends; then it waits for the gateway to close (or closes itself)
    "slow-headers": (b"POST /v1/responses HTTP/1.1\r\nHost: gw\r\n", False),
    "slow-body": (_POST + b"Content-Length: %d\r\n\r\n" % len(_BODY) + _BODY[:100], False),
    "leaves-mid-body": (_POST + b"Content-Length: %d\r\n\r\n" % len(_BODY) + _BODY[:100], True),
    "malformed-request": (b"POST /v1/responses HTTP/1.1\nHost: gw\n\n", False),
    "malformed-chunked-body": (_POST + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n", False),
}


async def _hostile(port: int, data: bytes, leave: bool) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        if leave:
            await writer.drain()
            return b""
        return await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()


async def _hostile_scenario(tmp: Path, name: str) -> list[object]:
    data, leave = HOSTILE[name]
    async with MisbehavingUpstream() as upstream:
        harness = GatewayHarness(tmp, config_doc([deployment("a", upstream.url())],
                                                 [{"name": "m", "targets": [{"deployment": "a"}]}]))
        runner = web.AppRunner(harness.app, access_log=None, handler_cancellation=True)
        await runner.setup()
        try:
            await asyncio.wait_for(harness.app[RELOADER].loaded.wait(), 10)
            guard = ConnectionGuard(ClientLimits(header_timeout=0.1, body_timeout=0.1, idle_timeout=1.0))
            site = GuardedSite(runner, guard, "127.0.0.1", _closed_port())
            await site.start()
            port = int(site.name.rsplit(":", 1)[1])
            for _ in range(3):
                await _hostile(port, data, leave)
            await eventually(lambda: not guard.connections, timeout=5)

            async def connections() -> None:
                answers = [await _hostile(port, data, leave) for _ in range(N)]
                assert leave or all(a.startswith((b"HTTP/1.1 4", b"HTTP/1.0 4")) for a in answers), answers[0]
                await eventually(lambda: not guard.connections, timeout=5)

            return await left_in_cycles(connections)
        finally:
            await runner.cleanup()
            await harness.close()


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_clients_leave_no_reference_cycles(name: str, tmp_path: Path) -> None:
    left = run_on_uvloop(lambda: _hostile_scenario(tmp_path, name))
    summary = Counter(type(obj).__name__ for obj in left)
    assert not left, f"{len(left)} objects of {N} '{name}' connections were left in reference cycles: " \
                     f"{summary.most_common(8)}"
