"""Hostile HTTP/1.1 clients on raw asyncio streams, and reading what the gateway exported.

The official SDK cannot send what these tests need (partial headers, bytes that are not UTF-8,
bare LF line endings, bodies dripped a byte at a time), so they write bytes themselves and
measure when and how the gateway closes the connection.
"""

from __future__ import annotations

import asyncio
import re
import time

import orjson


async def connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port)


async def read_until_closed(reader: asyncio.StreamReader, timeout: float) -> tuple[bytes, float]:
    """Everything the server sends until it closes, and how long that took; fails after ``timeout``."""
    started = time.monotonic()
    data = b""
    async with asyncio.timeout(timeout):
        while True:
            try:
                chunk = await reader.read(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            data += chunk
    return data, time.monotonic() - started


async def drip(writer: asyncio.StreamWriter, data: bytes, interval: float) -> None:
    """Send ``data`` one byte per ``interval`` (slowloris), until the server closes."""
    for byte in data:
        if writer.is_closing():
            return
        try:
            writer.write(bytes([byte]))
            await writer.drain()
        except ConnectionError:
            return
        await asyncio.sleep(interval)


async def exchange(port: int, request: bytes, timeout: float = 10) -> tuple[int, dict[str, str], bytes]:
    """Send one raw request (``Connection: close`` expected), return status, headers and body."""
    reader, writer = await connect(port)
    writer.write(request)
    await writer.drain()
    data, _ = await read_until_closed(reader, timeout)
    writer.close()
    return parse_response(data)


def parse_response(data: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding") == "chunked":
        body = dechunk(body)
    return status, headers, body


def dechunk(body: bytes) -> bytes:
    out = b""
    while body:
        size_line, _, rest = body.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out += rest[:size]
        body = rest[size + 2:]
    return out


def error_of(body: bytes) -> dict[str, object]:
    """The OpenAI error object of a body; fails unless the body has exactly that shape."""
    parsed = orjson.loads(body)
    assert set(parsed) == {"error"}, parsed
    assert set(parsed["error"]) == {"message", "type", "param", "code"}, parsed
    error: dict[str, object] = parsed["error"]
    return error


def metric(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample of a Prometheus text exposition (labels matched exactly), or None."""
    for line in text.splitlines():
        if line.startswith(name + " ") and not labels:
            return float(line.rsplit(" ", 1)[1])
        if line.startswith(name + "{"):
            found = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', line.split("}")[0]))
            if found == labels:
                return float(line.rsplit(" ", 1)[1])
    return None
