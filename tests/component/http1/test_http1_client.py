"""The HTTP/1.1 upstream client against a raw socket server: framing, pooling, streaming, TLS, lifecycle."""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import time
from urllib.parse import parse_qsl

import pytest
import trustme
from multidict import MultiDict

from modelgate_gateway.http1 import Endpoint, Http1Client
from raw_http_server import (
    RawConnection,
    RawHttpServer,
    RawRequest,
    chunk,
    eventually,
    keep_alive,
    response,
)

JSON_BODY = json.dumps({"id": "resp_1", "output": [{"type": "message", "text": "héllo"}]}).encode()


def _json_answer(request: RawRequest) -> bytes:
    return response(JSON_BODY, headers=[("Content-Type", "application/json")])


async def test_content_length_body_is_read_whole_and_the_connection_is_reused(client: Http1Client) -> None:
    async with RawHttpServer(keep_alive(_json_answer)) as server:
        endpoint = Endpoint(server.url())
        for _ in range(2):
            reply = await client.send(endpoint, "POST", "/responses", body=b"{}", content_type="application/json")
            assert reply.status == 200
            assert reply.headers["content-type"] == "application/json"  # case-insensitive lookup
            assert await reply.read() == JSON_BODY
            reply.release()
            assert client.idle_connections(endpoint.origin) == 1
        assert len(server.connections) == 1
        assert [r.connection for r in server.requests] == [0, 0]


async def test_request_bytes_on_the_wire(client: Http1Client) -> None:
    async with RawHttpServer(keep_alive(lambda r: response(b"ok"))) as server:
        endpoint = Endpoint(f"http://127.0.0.1:{server.port}/openai/v1/", {"api-key": "sekrit", "X-Team": "blue"},
                            query={"api-version": "2024-10-01", "a": "endpoint"})
        body = b'{"model": "gpt-4o", "input": "\xc3\xa9"}'
        reply = await client.send(endpoint, "POST", "/responses", body=body, content_type="application/json",
                                  extra_headers=[("X-Request-Id", "req-1"), ("OpenAI-Beta", "x")],
                                  query=MultiDict([("a", "x y&z"), ("b", "ü"), ("c", "1"), ("c", "2")]))
        assert await reply.read() == b"ok"
        reply.release()
        reply = await client.send(endpoint, "GET", "/responses/resp_1")
        await reply.read()
        reply.release()
    post, get = server.requests
    line = post.raw_head.split(b"\r\n", 1)[0].decode()
    method, target, version = line.split(" ")
    assert (method, version) == ("POST", "HTTP/1.1")
    path, _, query = target.partition("?")
    assert path == "/openai/v1/responses"
    # configured parameters win over a client's of the same name; repeated names all go out
    assert parse_qsl(query, keep_blank_values=True, strict_parsing=True) == [
        ("api-version", "2024-10-01"), ("a", "endpoint"), ("b", "ü"), ("c", "1"), ("c", "2")]
    assert post.headers[0] == ("Host", f"127.0.0.1:{server.port}")
    assert sorted((k.lower(), v) for k, v in post.headers) == sorted([
        ("host", f"127.0.0.1:{server.port}"), ("api-key", "sekrit"), ("x-team", "blue"),
        ("x-request-id", "req-1"), ("openai-beta", "x"), ("content-type", "application/json"),
        ("content-length", str(len(body)))])
    assert post.body == body
    assert get.raw_head.startswith(b"GET /openai/v1/responses/resp_1?api-version=2024-10-01&a=endpoint HTTP/1.1\r\n")
    assert get.header("Content-Length") is None
    assert sorted(k.lower() for k, _ in get.headers) == ["api-key", "host", "x-team"]
    assert get.body == b""


async def test_body_less_post_sends_content_length_zero(client: Http1Client) -> None:
    async with RawHttpServer(keep_alive(lambda r: response(b"{}"))) as server:
        reply = await client.send(Endpoint(server.url()), "POST", "/responses/resp_1/cancel")
        assert await reply.read() == b"{}"
        reply.release()
    assert server.requests[0].header("Content-Length") == "0"


@pytest.mark.parametrize("size", [64 * 1024, 64 * 1024 + 1, 8 * 1024 * 1024])
async def test_bodies_small_and_large_arrive_whole_on_a_reused_connection(client: Http1Client, size: int) -> None:
    """Large bodies are written after the head rather than copied into one buffer with it."""
    body = os.urandom(size)
    async with RawHttpServer(keep_alive(lambda r: response(b"%d" % len(r.body)))) as server:
        for _ in range(2):
            reply = await client.send(Endpoint(server.url()), "POST", "/responses", body=body,
                                      content_type="application/octet-stream")
            assert await reply.read() == b"%d" % size
            reply.release()
    assert [r.body == body for r in server.requests] == [True, True]
    assert {r.connection for r in server.requests} == {0}


@pytest.mark.skipif(os.geteuid() != 0, reason="binding port 80 needs root")
async def test_host_header_omits_the_default_port(client: Http1Client) -> None:
    async with RawHttpServer(keep_alive(lambda r: response(b"ok")), host="127.83.1.1", port=80) as server:
        reply = await client.send(Endpoint("http://127.83.1.1/v1"), "GET", "/models")
        assert await reply.read() == b"ok"
        reply.release()
    assert server.requests[0].header("Host") == "127.83.1.1"


async def test_chunked_body_streams_piece_by_piece_and_the_connection_is_pooled(client: Http1Client) -> None:
    go_on = asyncio.Event()

    async def handler(conn: RawConnection) -> None:
        while await conn.read_request() is not None:
            await conn.send(response(headers=[("Transfer-Encoding", "chunked")], length=False)
                            + chunk(b"data: one\n\n"))
            await go_on.wait()
            go_on.clear()
            await conn.send(chunk(b"data: two\n\n") + chunk(b"x" * 300) + b"0\r\n\r\n")

    async with RawHttpServer(handler) as server:
        endpoint = Endpoint(server.url())
        for _ in range(2):
            reply = await client.send(endpoint, "POST", "/responses", body=b"{}")
            pieces = reply.chunks()
            assert reply.chunks() is pieces
            first = await asyncio.wait_for(anext(pieces), 1)  # the server is holding the rest back
            assert first == b"data: one\n\n"
            go_on.set()
            rest = [piece async for piece in pieces]
            assert b"".join(rest) == b"data: two\n\n" + b"x" * 300
            reply.release()
            assert client.idle_connections(endpoint.origin) == 1
        assert len(server.connections) == 1


async def test_chunk_extensions_uppercase_sizes_and_trailers_are_understood(client: Http1Client) -> None:
    body = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;name=value\r\nhello\r\nA\r\n0123456789\r\n" \
           b"0\r\nX-Trailer: yes\r\n\r\n"
    async with RawHttpServer(keep_alive(lambda r: body)) as server:
        endpoint = Endpoint(server.url())
        for _ in range(2):
            reply = await client.send(endpoint, "GET", "/x")
            assert await reply.read() == b"hello0123456789"
            reply.release()
        assert len(server.connections) == 1


async def test_close_delimited_body_is_read_whole_and_not_pooled(client: Http1Client) -> None:
    async def handler(conn: RawConnection) -> None:
        await conn.read_request()
        await conn.send(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\npart one, ")
        await conn.send(b"part two")
        # returning closes the connection: that is the end of the body

    async with RawHttpServer(handler) as server:
        endpoint = Endpoint(server.url())
        reply = await client.send(endpoint, "GET", "/x")
        assert await reply.read() == b"part one, part two"
        reply.release()
        assert client.idle_connections(endpoint.origin) == 0


async def test_connection_close_and_http10_answers_are_not_pooled(client: Http1Client) -> None:
    answers = [response(b"abc", headers=[("Connection", "close")]), b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nhi"]
    async with RawHttpServer(keep_alive(lambda r: answers.pop(0))) as server:
        endpoint = Endpoint(server.url())
        for expected in (b"abc", b"hi"):
            reply = await client.send(endpoint, "GET", "/x")
            assert await reply.read() == expected
            reply.release()
            assert client.idle_connections(endpoint.origin) == 0
        assert len(server.connections) == 2
        await eventually(lambda: all(c.eof.is_set() for c in server.connections))


async def test_interim_100_continue_is_skipped(client: Http1Client) -> None:
    async with RawHttpServer(keep_alive(lambda r: b"HTTP/1.1 100 Continue\r\n\r\n" + response(JSON_BODY))) as server:
        reply = await client.send(Endpoint(server.url()), "POST", "/responses", body=b"{}")
        assert reply.status == 200
        assert await reply.read() == JSON_BODY
        reply.release()


@pytest.mark.parametrize(("method", "answer"), [
    ("HEAD", response(headers=[("Content-Length", "42"), ("Content-Type", "application/json")], length=False)),
    ("DELETE", response(status="204 No Content", length=False)),
], ids=["HEAD", "204"])
async def test_answers_without_a_body(client: Http1Client, method: str, answer: bytes) -> None:
    async with RawHttpServer(keep_alive(lambda r: answer)) as server:
        endpoint = Endpoint(server.url(), read_idle_seconds=0.2)
        for _ in range(2):
            reply = await client.send(endpoint, method, "/responses/resp_1")
            assert await reply.read() == b""
            reply.release()
            assert client.idle_connections(endpoint.origin) == 1
        assert len(server.connections) == 1


async def _stream_then_wait(conn: RawConnection) -> None:
    """Answer the first request with part of a body, then wait for the client to go away."""
    await conn.read_request()
    await conn.send(response(headers=[("Content-Length", "1000")], length=False) + b"x" * 10)
    await conn.wait_eof()


@pytest.mark.parametrize("finish", ["release", "close"])
async def test_leaving_a_body_unfinished_closes_the_connection(client: Http1Client, finish: str) -> None:
    async with RawHttpServer(_stream_then_wait) as server:
        endpoint = Endpoint(server.url())
        reply = await client.send(endpoint, "GET", "/x")
        assert await anext(reply.chunks()) == b"x" * 10
        reply.release() if finish == "release" else reply.close()
        await asyncio.wait_for(server.connections[0].eof.wait(), 1)
        assert client.idle_connections(endpoint.origin) == 0


async def test_close_aborts_even_a_complete_answer(client: Http1Client) -> None:
    async with RawHttpServer(keep_alive(lambda r: response(b"done"))) as server:
        endpoint = Endpoint(server.url())
        reply = await client.send(endpoint, "GET", "/x")
        assert await reply.read() == b"done"
        reply.close()
        assert client.idle_connections(endpoint.origin) == 0
        await asyncio.wait_for(server.connections[0].eof.wait(), 1)


def test_endpoint_validation_and_origin() -> None:
    assert Endpoint("http://example.com/v1").origin == "http://example.com:80"
    assert Endpoint("https://example.com/openai/v1/").origin == "https://example.com:443"
    assert Endpoint("http://127.0.0.1:8080/v1").origin == "http://127.0.0.1:8080"
    for url in ("ftp://example.com/v1", "example.com/v1", "http:///v1"):
        with pytest.raises(ValueError):
            Endpoint(url)
    bad_headers = [{"X-Key": "a\r\nInjected: 1"}, {"X-Key": "a\nb"}, {"X-Key": "a\x00b"},
                   {"Bad Name": "v"}, {"X-Key\r\n": "v"}, {"": "v"}, {"X(y)": "v"}]
    for headers in bad_headers:
        with pytest.raises(ValueError):
            Endpoint("http://example.com/v1", headers)


async def _one_idle_connection_per_pool(client: Http1Client, endpoint: Endpoint, keys: tuple[str, ...]) -> None:
    for key in keys:
        reply = await client.send(endpoint, "GET", "/x", pool_key=key)
        await reply.read()
        reply.release()


async def test_retire_closes_pools_not_kept_after_the_grace_period(client: Http1Client) -> None:
    async with RawHttpServer(keep_alive(lambda r: response(b"ok"))) as server:
        endpoint = Endpoint(server.url())
        await _one_idle_connection_per_pool(client, endpoint, ("kept", "retired"))
        assert client.idle_connections("kept") == client.idle_connections("retired") == 1
        kept, retired = server.connections
        retired_at = time.monotonic()
        client.retire({"kept"}, grace_seconds=0.2)
        await asyncio.wait_for(retired.eof.wait(), 1)
        assert retired.eof_at is not None and retired.eof_at - retired_at >= 0.15
        assert client.idle_connections("retired") == 0
        assert not kept.eof.is_set()
        assert client.idle_connections("kept") == 1
        reply = await client.send(endpoint, "GET", "/x", pool_key="kept")
        await reply.read()
        reply.release()
        assert len(server.connections) == 2  # the kept pool still works on its old connection
        await client.close()
        await asyncio.wait_for(kept.eof.wait(), 1)
        assert client.idle_connections("kept") == 0


async def test_close_also_closes_pools_still_in_their_retire_grace_period(client: Http1Client) -> None:
    async with RawHttpServer(keep_alive(lambda r: response(b"ok"))) as server:
        endpoint = Endpoint(server.url())
        await _one_idle_connection_per_pool(client, endpoint, ("kept", "retired"))
        kept, retiring = server.connections
        client.retire({"kept"}, grace_seconds=30)
        await client.close()
        await asyncio.wait_for(kept.eof.wait(), 1)
        await asyncio.wait_for(retiring.eof.wait(), 1)


async def test_concurrent_sends_to_one_pool() -> None:
    arrived = asyncio.Event()

    async def handler(conn: RawConnection) -> None:
        while (request := await conn.read_request()) is not None:
            if len(server.requests) >= 20:
                arrived.set()
            await arrived.wait()  # hold every answer until all 20 requests are in flight
            await conn.send(response(request.body[::-1]))

    client = Http1Client(max_idle_per_pool=4)
    try:
        async with RawHttpServer(handler) as server:
            endpoint = Endpoint(server.url())

            async def one(i: int) -> bytes:
                reply = await client.send(endpoint, "POST", "/responses", body=f"request {i:02d}".encode())
                try:
                    return await reply.read()
                finally:
                    reply.release()

            bodies = await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(20))), 2)
            assert bodies == [f"request {i:02d}".encode()[::-1] for i in range(20)]
            assert len(server.connections) == 20
            assert 1 <= client.idle_connections(endpoint.origin) <= 4
            await eventually(lambda: sum(c.eof.is_set() for c in server.connections)
                             == 20 - client.idle_connections(endpoint.origin))
    finally:
        await client.close()


async def test_tls_round_trip_with_a_trusted_ca(ca: trustme.CA, server_tls: ssl.SSLContext) -> None:
    trusting = ssl.create_default_context()
    ca.configure_trust(trusting)
    client = Http1Client(ssl_context=trusting)
    try:
        async with RawHttpServer(keep_alive(_json_answer), ssl_context=server_tls) as server:
            endpoint = Endpoint(server.url())
            assert endpoint.origin == f"https://127.0.0.1:{server.port}"
            for _ in range(2):
                reply = await client.send(endpoint, "POST", "/responses", body=b"{}")
                assert await reply.read() == JSON_BODY
                reply.release()
            assert len(server.connections) == 1
            assert server.requests[0].header("Host") == f"127.0.0.1:{server.port}"
    finally:
        await client.close()


async def test_tls_with_an_untrusted_certificate_fails_verification(
        client: Http1Client, server_tls: ssl.SSLContext) -> None:
    async with RawHttpServer(keep_alive(_json_answer), ssl_context=server_tls) as server:
        with pytest.raises(ssl.SSLCertVerificationError):
            await client.send(Endpoint(server.url()), "GET", "/x")
        assert server.requests == []
