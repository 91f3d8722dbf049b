"""Regression tests of the HTTP/1.1 upstream client: large bodies and read pausing, replies outliving
their connection, oversized heads, bytes past an answer, resets, stale idle connections, happy eyeballs."""

from __future__ import annotations

import asyncio
import contextlib
import select
import socket
import time
from collections.abc import Callable, Iterator

import pytest

from modelgate_gateway.http1 import Endpoint, Http1Client, Reply, UpstreamDisconnected, UpstreamProtocolError
from raw_http_server import (
    RawConnection,
    RawHttpServer,
    RawRequest,
    chunk,
    eventually,
    keep_alive,
    response,
)

PROMPTLY = 0.9  # seconds: what "at once" means here (every test stays under a second)
PAUSE_AFTER = 1 << 20  # buffered, undrained body bytes past which the client pauses reading
BIG = b'{"id":"resp_1","output":[{"result":"' + b"A" * 3_000_000 + b'"}]}'
BIG_ANSWERS = {
    "content-length": response(BIG),
    "chunked": response(headers=[("Transfer-Encoding", "chunked")], length=False) + chunk(BIG) + b"0\r\n\r\n",
}


@pytest.mark.parametrize("framing", BIG_ANSWERS)
async def test_read_of_a_body_past_the_pause_threshold_completes(client: Http1Client, framing: str) -> None:
    async with RawHttpServer(keep_alive(lambda r: BIG_ANSWERS[framing])) as server:
        endpoint = Endpoint(server.url(), read_idle_seconds=0.5)
        for _ in range(2):  # and the connection, paused and resumed on the way, serves the next answer
            reply = await client.send(endpoint, "POST", "/responses", body=b"{}")
            body = await asyncio.wait_for(reply.read(), PROMPTLY)
            assert len(body) == len(BIG)
            assert body == BIG
            reply.release()
            assert client.idle_connections(endpoint.origin) == 1
        assert len(server.connections) == 1


def _numbered_bodies() -> Callable[[RawRequest], bytes]:
    count = iter(range(100))
    return lambda r: response(f"body of request {next(count)}".encode())


@pytest.mark.parametrize("consumed", [True, False], ids=["iterated", "read"])
async def test_chunks_iterator_ends_at_release_and_never_reads_the_next_answer(
        client: Http1Client, consumed: bool) -> None:
    async with RawHttpServer(keep_alive(_numbered_bodies())) as server:
        endpoint = Endpoint(server.url())
        first = await client.send(endpoint, "GET", "/a")
        pieces = first.chunks()
        if consumed:
            assert b"".join([piece async for piece in pieces]) == b"body of request 0"
        else:
            assert await first.read() == b"body of request 0"
        first.release()
        second = await client.send(endpoint, "GET", "/b")  # on the connection the first reply used
        assert len(server.connections) == 1
        with pytest.raises(StopAsyncIteration):
            await asyncio.wait_for(anext(pieces), PROMPTLY)
        assert await asyncio.wait_for(second.read(), PROMPTLY) == b"body of request 1"
        second.release()
        assert client.idle_connections(endpoint.origin) == 1


async def _endless_header_lines(conn: RawConnection) -> None:
    await conn.read_request()
    line = b"X-Pad: " + b"a" * 1000 + b"\r\n"
    with contextlib.suppress(ConnectionError):  # the client gives up and resets the connection
        await conn.send(b"HTTP/1.1 200 OK\r\n")
        for _ in range(64):  # up to 1 MiB of header lines, 16 KiB per write
            await conn.send(line * 16)
    await conn.wait_eof()


async def test_head_larger_than_64_kib_is_a_protocol_error(client: Http1Client) -> None:
    async with RawHttpServer(_endless_header_lines) as server:
        endpoint = Endpoint(server.url(), read_idle_seconds=0.5)
        with pytest.raises(UpstreamProtocolError):
            await asyncio.wait_for(client.send(endpoint, "GET", "/x"), PROMPTLY)
        await asyncio.wait_for(server.connections[0].eof.wait(), PROMPTLY)
        assert client.idle_connections(endpoint.origin) == 0


@pytest.mark.parametrize("lines", [256, 257])
async def test_more_than_256_header_lines_is_a_protocol_error(client: Http1Client, lines: int) -> None:
    answer = response(b"ok", headers=[(f"X-H{i}", "v") for i in range(lines - 1)])  # + Content-Length
    assert len(answer) < 8 * 1024  # small lines: the line count is what is refused, not the size
    async with RawHttpServer(keep_alive(lambda r: answer)) as server:
        endpoint = Endpoint(server.url(), read_idle_seconds=0.5)
        if lines <= 256:
            reply = await client.send(endpoint, "GET", "/x")
            assert len(reply.headers) == lines
            assert await reply.read() == b"ok"
            reply.release()
            assert client.idle_connections(endpoint.origin) == 1
            return
        with pytest.raises(UpstreamProtocolError):
            await asyncio.wait_for(client.send(endpoint, "GET", "/x"), PROMPTLY)
        await asyncio.wait_for(server.connections[0].eof.wait(), PROMPTLY)
        assert client.idle_connections(endpoint.origin) == 0


STRAY = {
    "same-segment": b"HTTP/1.1 500 Oops\r\nContent-Length: 4\r\nX-Extra: 1\r\n\r\nevil",
    "later-segment": b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\nX-Extra: 1\r\n\r\nstray",  # incomplete
}


@pytest.mark.parametrize("where", STRAY)
async def test_bytes_after_a_complete_answer_drop_the_connection(client: Http1Client, where: str) -> None:
    send_stray = asyncio.Event()

    async def handler(conn: RawConnection) -> None:
        if conn.index > 0:
            await keep_alive(lambda r: response(b"fresh"))(conn)
            return
        await conn.read_request()
        if where == "same-segment":
            await conn.send(response(b"ok") + STRAY[where])
        else:
            await conn.send(response(b"ok"))
            await send_stray.wait()
            await conn.send(STRAY[where])
        await conn.wait_eof()

    async with RawHttpServer(handler) as server:
        endpoint = Endpoint(server.url(), read_idle_seconds=0.5)
        reply = await client.send(endpoint, "GET", "/x")
        assert reply.status == 200
        assert [v for k, v in reply.headers.items() if k.lower() == "content-length"] == ["2"]
        assert "X-Extra" not in reply.headers
        assert await reply.read() == b"ok"
        send_stray.set()  # while the caller still holds the reply
        await asyncio.wait_for(server.connections[0].eof.wait(), PROMPTLY)  # the client dropped it
        reply.release()
        assert client.idle_connections(endpoint.origin) == 0
        reply = await asyncio.wait_for(client.send(endpoint, "GET", "/y"), PROMPTLY)
        assert (reply.status, await reply.read()) == (200, b"fresh")
        reply.release()
        assert len(server.connections) == 2


def _arrived_whole(reply: Reply) -> bool:
    """White-box: whether the whole answer is in (no public way to know without reading it)."""
    conn = reply._conn
    return conn is not None and conn.complete


async def test_answer_completing_in_the_read_that_pauses_leaves_a_reusable_connection(client: Http1Client) -> None:
    big = b"x" * (PAUSE_AFTER + 1)  # the pause threshold is crossed by the answer's very last byte

    async with RawHttpServer(keep_alive(lambda r: response(big if r.target.endswith("/big") else b"small"))) as server:
        endpoint = Endpoint(server.url(), read_idle_seconds=0.5)
        reply = await client.send(endpoint, "GET", "/big")
        await eventually(lambda: _arrived_whole(reply))
        assert reply._conn is not None and reply._conn.paused  # the case under test: reading paused
        reply.release()  # the body is not wanted
        assert client.idle_connections(endpoint.origin) == 1
        reply = await asyncio.wait_for(client.send(endpoint, "GET", "/small"), PROMPTLY)
        assert await asyncio.wait_for(reply.read(), PROMPTLY) == b"small"
        reply.release()
        assert len(server.connections) == 1
        assert client.idle_connections(endpoint.origin) == 1


@pytest.mark.parametrize("use_chunks", [False, True], ids=["read", "chunks"])
async def test_close_delimited_body_cut_by_a_reset_is_a_disconnect(client: Http1Client, use_chunks: bool) -> None:
    part = b'{"id": "resp_1", "output": ['
    reset_now = asyncio.Event()

    async def handler(conn: RawConnection) -> None:
        await conn.read_request()
        await conn.send(response(part, headers=[("Content-Type", "application/json")], length=False))
        await reset_now.wait()
        conn.reset()

    async with RawHttpServer(handler) as server:
        endpoint = Endpoint(server.url())
        reply = await client.send(endpoint, "GET", "/x")  # the first part came with the head
        reset_now.set()
        pieces: list[bytes] = []
        with pytest.raises(UpstreamDisconnected):
            if use_chunks:
                async with asyncio.timeout(PROMPTLY):
                    async for piece in reply.chunks():
                        pieces.append(piece)
            else:
                await asyncio.wait_for(reply.read(), PROMPTLY)
        assert b"".join(pieces) in (part, b"")
        reply.release()
        assert client.idle_connections(endpoint.origin) == 0


async def test_idle_connection_whose_fin_just_arrived_is_not_handed_out(client: Http1Client) -> None:
    """The FIN is processed in the same loop turn that wakes a sender, before connection_lost runs."""

    async def handler(conn: RawConnection) -> None:
        if conn.index > 0:
            await keep_alive(lambda r: response(b"fresh"))(conn)
            return
        await conn.read_request()
        await conn.send(response(b"first"))
        await conn.wait_eof()

    async with RawHttpServer(handler) as server:
        endpoint = Endpoint(server.url())
        reply = await client.send(endpoint, "GET", "/x")
        assert await reply.read() == b"first"
        reply.release()
        assert client.idle_connections(endpoint.origin) == 1
        wake_r, wake_w = socket.socketpair()
        reader, writer = await asyncio.open_connection(sock=wake_r)

        async def post_when_woken() -> bytes:
            await reader.read(1)
            reply = await client.send(endpoint, "POST", "/responses", body=b"{}")
            try:
                return await reply.read()
            finally:
                reply.release()

        try:
            task = asyncio.create_task(post_when_woken())
            wake_w.send(b"x")  # both become readable before the loop polls again: the wake-up first, ...
            server.connections[0].send_fin()  # ... then the upstream's FIN on the idle connection
            assert await asyncio.wait_for(task, PROMPTLY) == b"fresh"
        finally:
            writer.close()
            await writer.wait_closed()
            wake_w.close()
        assert [(r.method, r.connection) for r in server.requests] == [("GET", 0), ("POST", 1)]
        assert client.idle_connections(endpoint.origin) == 1


SECRET = "sk-live-€-never-in-logs"


@pytest.mark.parametrize("where", ["endpoint", "extra", "content-type"])
def test_header_value_outside_latin1_is_refused_without_showing_it(where: str) -> None:
    url = "http://example.com/v1"
    with pytest.raises(ValueError, match="Latin-1") as info:
        if where == "endpoint":
            Endpoint(url, {"Api-Key": SECRET})
        elif where == "extra":
            Endpoint(url).head("GET", "/x", None, [("Api-Key", SECRET)], None, None)
        else:
            Endpoint(url).head("POST", "/x", None, (), SECRET, 0)
    assert type(info.value) is ValueError  # not a UnicodeEncodeError, which carries the whole string
    assert info.value.__cause__ is None
    for text in (str(info.value), repr(info.value)):
        assert SECRET not in text
        assert "never-in-logs" not in text
    latin1 = Endpoint(url, {"X-Name": "café"}).head("GET", "/x", None, [("X-Other", "naïve")], None, None)
    assert b"X-Name: caf\xe9\r\n" in latin1
    assert b"X-Other: na\xefve\r\n" in latin1


@pytest.fixture
def unresponsive_address() -> Iterator[tuple[str, int]]:
    """An address whose SYNs go unanswered: a listener that never accepts, with its accept queue full."""
    with contextlib.ExitStack() as stack:
        listener = stack.enter_context(socket.socket())
        listener.bind(("127.0.0.2", 0))
        listener.listen(0)
        address: tuple[str, int] = listener.getsockname()
        fillers = [stack.enter_context(socket.socket()) for _ in range(3)]
        for filler in fillers:
            filler.setblocking(False)
            filler.connect_ex(address)
        _, connected, _ = select.select([], fillers[:1], [], 1)
        assert connected, "the first filler should fill the accept queue"
        yield address


AddrInfo = tuple[socket.AddressFamily, socket.SocketKind, int, str, tuple[str, int]]


@pytest.mark.asyncio(loop_factories=["asyncio"])  # uvloop's loop methods cannot be replaced
async def test_happy_eyeballs_passes_an_unresponsive_address_and_dns_answers_are_cached(
        client: Http1Client, unresponsive_address: tuple[str, int], monkeypatch: pytest.MonkeyPatch) -> None:
    lookups: list[str] = []
    closing = keep_alive(lambda r: response(b"ok", headers=[("Connection", "close")]))  # one request per connection

    async with RawHttpServer(closing) as server:
        async def getaddrinfo(host: str, port: int, *args: object, **kwargs: object) -> list[AddrInfo]:
            lookups.append(host)
            return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", unresponsive_address),
                    (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", ("127.0.0.1", server.port))]

        monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", getaddrinfo)
        endpoint = Endpoint(f"http://upstream.test:{server.port}/v1", connect_seconds=3)
        for connections in (1, 2):
            started = time.monotonic()
            reply = await asyncio.wait_for(client.send(endpoint, "GET", "/x"), PROMPTLY)
            assert time.monotonic() - started < 0.6  # the next address is tried after 0.25 s, not 3 s
            assert await reply.read() == b"ok"
            reply.release()
            assert client.idle_connections(endpoint.origin) == 0
            assert len(server.connections) == connections
        assert lookups == ["upstream.test"]  # the second connection used the cached answer
        assert server.requests[0].header("Host") == f"upstream.test:{server.port}"
