"""The upstream client's limits hold across reads: the body limit counts what the reader already
took, and trailers count with the headers toward the line limit.

The connection checks the body size against one precomputed room (the high-water mark or the
limit less the bytes taken, whichever is smaller) and counts header lines by the length of the list
they are collected in: these tests go through those fast paths with the unusual cases.
"""

from __future__ import annotations

import asyncio

import pytest

from modelgate_gateway.http1 import Endpoint, Http1Client, UpstreamProtocolError
from raw_http_server import RawConnection, RawHttpServer, chunk, keep_alive, response

PROMPTLY = 5.0  # seconds: a bound for what happens at once, never a wait
HIGH_WATER = 1 << 20  # undrained body bytes at which the connection pauses reading


def _two_parts(first: bytes, second: bytes, taken: asyncio.Event) -> RawHttpServer:
    """A chunked answer whose second part is sent only once the reader took the first."""

    async def handler(conn: RawConnection) -> None:
        await conn.read_request()
        await conn.send(response(headers=[("Transfer-Encoding", "chunked")], length=False) + chunk(first))
        await taken.wait()
        await conn.send(chunk(second) + b"0\r\n\r\n")
        await conn.wait_eof()

    return RawHttpServer(handler)


@pytest.mark.parametrize("limit", [64, HIGH_WATER + 64])  # below the high-water mark, and above it
@pytest.mark.parametrize(("second", "refused"), [(24, False), (25, True)])
async def test_body_limit_counts_the_pieces_the_reader_already_took(limit: int, second: int, refused: bool) -> None:
    client = Http1Client(max_body_bytes=limit)
    taken = asyncio.Event()
    first = limit - 24
    try:
        async with _two_parts(b"a" * first, b"b" * second, taken) as server:
            reply = await client.send(Endpoint(server.url()), "GET", "/x")
            pieces = aiter(reply.chunks())
            got = 0
            while got < first:  # the first part, in as many reads as it takes
                got += len(await asyncio.wait_for(anext(pieces), PROMPTLY))
            assert got == first
            taken.set()
            rest: list[bytes] = []
            if refused:  # limit-24 taken + 25 buffered > limit, though what is buffered alone is far below it
                with pytest.raises(UpstreamProtocolError, match=f"larger than {limit} bytes"):
                    async with asyncio.timeout(PROMPTLY):
                        rest += [piece async for piece in pieces]
                reply.close()
                return
            rest += [piece async for piece in pieces]
            assert b"".join(rest) == b"b" * second  # exactly at the limit
            reply.release()
    finally:
        await client.close()


@pytest.mark.parametrize(("trailers", "refused"), [(55, False), (56, True)])
async def test_trailers_count_with_the_headers_toward_256_lines(
    client: Http1Client, trailers: int, refused: bool
) -> None:
    head = response(headers=[(f"X-H{i}", "v") for i in range(200)] + [("Transfer-Encoding", "chunked")], length=False)
    tail = "".join(f"X-T{i}: v\r\n" for i in range(trailers)).encode()
    answer = head + chunk(b"ok") + b"0\r\n" + tail + b"\r\n"  # 201 header lines + the trailers
    async with RawHttpServer(keep_alive(lambda r: answer)) as server:
        endpoint = Endpoint(server.url(), read_idle_seconds=PROMPTLY)
        reply = await client.send(endpoint, "GET", "/x")
        assert len(reply.headers) == 201
        if refused:
            with pytest.raises(UpstreamProtocolError, match="more than 256 header lines"):
                await asyncio.wait_for(reply.read(), PROMPTLY)
            reply.release()
            assert client.idle_connections(endpoint.origin) == 0
            return
        assert await asyncio.wait_for(reply.read(), PROMPTLY) == b"ok"
        reply.release()
        assert client.idle_connections(endpoint.origin) == 1
