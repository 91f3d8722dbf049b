"""A small HTTP forward proxy over real sockets, for testing egress through a proxy.

``CONNECT host:port`` opens a tunnel (answered with ``status``, 200 by default); any other request
line must be absolute-form (``GET http://host:port/path``) and is forwarded byte for byte to that
origin. Every request head the proxy received is kept (``heads``), so tests can check the
request line and ``Proxy-Authorization``; ``required_auth`` makes it answer 407 without it.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from loopback_server import LoopbackServer


@dataclass
class HttpProxy(LoopbackServer):
    required_auth: str | None = None
    status: int = 200
    heads: list[bytes] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        self.heads.append(head)
        method, target, _ = head.split(b"\r\n", 1)[0].decode().split(" ", 2)
        if (
            self.required_auth is not None
            and f"proxy-authorization: {self.required_auth}".lower().encode() not in head.lower()
        ):
            writer.write(b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
            return
        if method == "CONNECT":
            if self.status != 200:
                writer.write(b"HTTP/1.1 %d Refused\r\nContent-Length: 0\r\n\r\n" % self.status)
                await writer.drain()
                return
            host, _, port = target.rpartition(":")
            up_reader, up_writer = await asyncio.open_connection(host.strip("[]"), int(port))
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await writer.drain()
        else:
            origin = urlsplit(target)
            assert origin.hostname is not None and origin.port is not None, target
            up_reader, up_writer = await asyncio.open_connection(origin.hostname, origin.port)
            up_writer.write(head)
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            up_writer.close()


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    while data := await source.read(65536):
        sink.write(data)
        await sink.drain()
    with contextlib.suppress(OSError):
        sink.write_eof()
