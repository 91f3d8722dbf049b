"""Clients that stop reading, on raw sockets, and the bytes the kernel holds on a loopback port.

A slow client is a socket with a small receive buffer whose owner does not call ``recv``: nothing
is read behind the test's back (an asyncio stream or the SDK would read ahead into user space).
:func:`kernel_queued` reads ``/proc/net/tcp`` (every TCP socket's send and receive queues), so a
test can account for every byte an upstream wrote: in the kernel's buffers, read by the client,
or held by the gateway.
"""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import struct
from typing import Any

import orjson

RECEIVE_BUFFER = 4096
"""The slow client's receive buffer (the kernel doubles it and keeps its own floor)."""


async def open_slow(port: int) -> socket.socket:
    """A non-blocking socket connected to ``127.0.0.1:port`` with a small receive buffer."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)  # before connect: sets the window
    sock.setblocking(False)
    await asyncio.wait_for(asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port)), 5)
    return sock


async def recv_some(sock: socket.socket, timeout: float = 10) -> bytes:
    data = await asyncio.wait_for(asyncio.get_running_loop().sock_recv(sock, 1 << 20), timeout)
    if not data:
        raise ConnectionResetError("the gateway closed the connection")
    return data


async def read_head(sock: socket.socket) -> tuple[bytes, bytes]:
    """An HTTP answer's head, and any bytes read past it."""
    data = b""
    while b"\r\n\r\n" not in data:  # bounded by recv_some's timeout and the gateway's head size
        data += await recv_some(sock)
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest


async def websocket_handshake(sock: socket.socket, api_key: str) -> None:
    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        "GET /v1/responses HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nAuthorization: Bearer {api_key}\r\n\r\n"
    )
    await asyncio.get_running_loop().sock_sendall(sock, request.encode())
    head, rest = await read_head(sock)
    assert head.startswith(b"HTTP/1.1 101"), head
    assert not rest  # the gateway sends nothing before the first turn


def client_frame(event: dict[str, Any]) -> bytes:
    """A masked text frame, as a client must send it."""
    payload = orjson.dumps(event)
    mask = os.urandom(4)
    size = len(payload)
    header = b"\x81" + (bytes([0x80 | size]) if size < 126 else b"\xfe" + struct.pack("!H", size))
    masked = bytes(byte ^ mask[index % 4] for index, byte in enumerate(payload))
    return header + mask + masked


def server_frames(buffer: bytearray) -> list[tuple[int, bytes]]:
    """Take the complete (unmasked) frames off the front of ``buffer``: (opcode, payload) each."""
    frames = []
    while len(buffer) >= 2:
        size, at = buffer[1] & 0x7F, 2
        if size == 126:
            if len(buffer) < 4:
                break
            size, at = struct.unpack("!H", buffer[2:4])[0], 4
        elif size == 127:
            if len(buffer) < 10:
                break
            size, at = struct.unpack("!Q", buffer[2:10])[0], 10
        if len(buffer) < at + size:
            break
        frames.append((buffer[0] & 0x0F, bytes(buffer[at : at + size])))
        del buffer[: at + size]
    return frames


async def websocket_events_until_final(sock: socket.socket, timeout: float = 30) -> list[dict[str, Any]]:
    """Read (at last) every event up to the turn's final one."""
    buffer = bytearray()
    events: list[dict[str, Any]] = []
    async with asyncio.timeout(timeout):
        while True:  # bounded by the timeout
            buffer += await recv_some(sock)
            for opcode, payload in server_frames(buffer):
                assert opcode == 1, (opcode, payload[:200])
                events.append(orjson.loads(payload))
                if events[-1]["type"] in ("response.completed", "response.failed", "error"):
                    return events


def kernel_queued(ports: set[int]) -> int:
    """Bytes in the send and receive queues of every established loopback TCP socket on ``ports``."""
    total = 0
    with open("/proc/net/tcp") as table:
        next(table)
        for line in table:
            fields = line.split()
            local, remote, state, queues = fields[1], fields[2], fields[3], fields[4]
            if state != "01":  # ESTABLISHED only (a listener's queue counts connections, not bytes)
                continue
            if int(local.split(":")[1], 16) in ports or int(remote.split(":")[1], 16) in ports:
                sent, received = queues.split(":")
                total += int(sent, 16) + int(received, 16)
    return total


async def post_stream(sock: socket.socket, api_key: str, body: dict[str, Any]) -> None:
    """Send a streaming ``POST /v1/responses``, then read nothing."""
    data = orjson.dumps(body)
    head = (
        "POST /v1/responses HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {api_key}\r\nContent-Length: {len(data)}\r\n\r\n"
    )
    await asyncio.get_running_loop().sock_sendall(sock, head.encode() + data)


async def sse_events_until_final(sock: socket.socket, timeout: float = 30) -> list[dict[str, Any]]:
    """Read (at last) the whole chunked SSE answer: its events, in order."""
    async with asyncio.timeout(timeout):
        head, body = await read_head(sock)
        assert head.startswith(b"HTTP/1.1 200") and b"chunked" in head.lower(), head
        buffer = bytearray(body)
        while not buffer.endswith(b"\r\n0\r\n\r\n"):  # the last chunk; bounded by the timeout
            buffer += await recv_some(sock)
    text = bytearray()
    at = 0
    while True:
        end = buffer.index(b"\r\n", at)
        size = int(buffer[at:end].split(b";")[0], 16)
        if not size:
            break
        text += buffer[end + 2 : end + 2 + size]
        at = end + 4 + size
    events = []
    for block in bytes(text).split(b"\n\n"):
        for line in block.split(b"\n"):
            if line.startswith(b"data: {"):
                events.append(orjson.loads(line[6:]))
    return events
