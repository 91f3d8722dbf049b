"""A tiny raw HTTP/1.1 server over a real socket, for testing HTTP clients byte by byte.

The test supplies a handler coroutine per connection; it reads requests with
:meth:`RawConnection.read_request` and writes exactly the bytes it wants (well-formed or not),
stalls, closes, or resets (:meth:`RawConnection.reset`). The server counts connections, keeps every
request's raw bytes, and notes when a client closed its side (``RawConnection.eof``), so tests can
assert on pooling and aborts.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import ssl
import struct
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field


@dataclass
class RawRequest:
    raw_head: bytes
    """Request line and headers exactly as received, including the final blank line."""
    method: str
    target: str
    headers: list[tuple[str, str]]
    """In wire order, names as sent."""
    body: bytes
    connection: int
    """Index of the connection (in accept order) that carried the request."""

    def header(self, name: str) -> str | None:
        values = [v for k, v in self.headers if k.lower() == name.lower()]
        return values[0] if values else None


@dataclass
class RawConnection:
    index: int
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    server: RawHttpServer
    eof: asyncio.Event = field(default_factory=asyncio.Event)
    """Set once this server side read end-of-file: the client closed the connection."""
    eof_at: float | None = None

    async def read_request(self) -> RawRequest | None:
        """The next request (body by Content-Length only), or None when the client closed the connection."""
        try:
            head = await self.reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            self._saw_eof()
            return None
        lines = head.decode("latin-1").split("\r\n")
        method, target, _version = lines[0].split(" ", 2)
        headers: list[tuple[str, str]] = []
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers.append((name, value.strip()))
        length = int(next((v for k, v in headers if k.lower() == "content-length"), "0"))
        body = await self.reader.readexactly(length) if length else b""
        request = RawRequest(head, method, target, headers, body, self.index)
        if self.server.keep_history:
            self.server.requests.append(request)
        self.server.request_arrived.set()
        return request

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def wait_eof(self) -> bytes:
        """Read until the client closes; return whatever it sent meanwhile."""
        data = b""
        with contextlib.suppress(ConnectionError):
            data = await self.reader.read()
        self._saw_eof()
        return data

    def reset(self) -> None:
        """Close the connection with a TCP reset (RST) instead of an orderly FIN."""
        sock = self.writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # linger 0: close sends RST
        self.writer.transport.abort()

    def send_fin(self) -> None:
        """Shut down the sending side right now (``writer.write_eof()`` does so only on a later loop turn on uvloop)."""
        fileno = self.writer.get_extra_info("socket").fileno()
        with socket.socket(fileno=os.dup(fileno)) as sock:  # uvloop's transport sockets refuse shutdown()
            sock.shutdown(socket.SHUT_WR)

    def _saw_eof(self) -> None:
        if not self.eof.is_set():
            self.eof_at = time.monotonic()
            self.eof.set()


Handler = Callable[[RawConnection], Awaitable[object]]


def response(body: bytes = b"", status: str = "200 OK", headers: list[tuple[str, str]] | None = None,
             length: bool = True) -> bytes:
    """One HTTP/1.1 response's bytes, with a Content-Length unless ``length`` is False."""
    head = [f"HTTP/1.1 {status}"] + [f"{k}: {v}" for k, v in headers or []]
    if length:
        head.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


def chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def keep_alive(respond: Callable[[RawRequest], bytes]) -> Handler:
    """A handler that answers every request on the connection with ``respond(request)``."""
    async def handler(conn: RawConnection) -> None:
        while (request := await conn.read_request()) is not None:
            await conn.send(respond(request))
    return handler


class RawHttpServer:
    def __init__(self, handler: Handler, ssl_context: ssl.SSLContext | None = None, *,
                 host: str = "127.0.0.1", port: int = 0) -> None:
        self.handler = handler
        self.host = host
        self.ssl_context = ssl_context
        self.connections: list[RawConnection] = []
        self.requests: list[RawRequest] = []
        self.request_arrived = asyncio.Event()
        self.errors: list[BaseException] = []
        self.keep_history = True
        """False: ``connections`` and ``requests`` stay empty (long benchmark runs)."""
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = port

    async def __aenter__(self) -> RawHttpServer:
        self._server = await asyncio.start_server(self._serve, self.host, self.port, ssl=self.ssl_context)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def url(self, path: str = "/v1") -> str:
        scheme = "https" if self.ssl_context is not None else "http"
        return f"{scheme}://{self.host}:{self.port}{path}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        conn = RawConnection(len(self.connections), reader, writer, self)
        if self.keep_history:
            self.connections.append(conn)
        try:
            await self.handler(conn)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:  # only close() cancels: end quietly, or asyncio logs the cancelled task
            pass
        except Exception as exc:  # surfaced by tests through `errors`
            self.errors.append(exc)
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 1)
            self._tasks.discard(task)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task


async def eventually(condition: Callable[[], bool], timeout: float = 1.0) -> None:
    """Poll ``condition`` until it holds; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met within the time limit")
        await asyncio.sleep(0.005)

