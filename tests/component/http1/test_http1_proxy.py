"""Egress through an HTTP forward proxy: CONNECT tunnels for TLS upstreams, absolute-form requests
for plain ones, credentials sent to the proxy only, refusals as ProxyError without the secret."""

from __future__ import annotations

import ssl

import pytest
import trustme

from http_proxy import HttpProxy
from modelgate_gateway.http1 import Endpoint, Http1Client, Proxy, ProxyError
from raw_http_server import RawHttpServer, keep_alive, response

SECRET = "s3cr3t-pass"
AUTH = Proxy.from_url(f"http://team:{SECRET}@127.0.0.1:1").authorization


def _proxy(proxy: HttpProxy, with_credentials: bool = True) -> Proxy:
    credentials = f"team:{SECRET}@" if with_credentials else ""
    return Proxy.from_url(f"http://{credentials}127.0.0.1:{proxy.port}")


async def test_tls_upstream_through_a_connect_tunnel(ca: trustme.CA, server_tls: ssl.SSLContext) -> None:
    trusting = ssl.create_default_context()
    ca.configure_trust(trusting)
    client = Http1Client(ssl_context=trusting)
    try:
        async with HttpProxy(required_auth=AUTH) as proxy, \
                RawHttpServer(keep_alive(lambda r: response(b"tunnelled")), ssl_context=server_tls) as server:
            endpoint = Endpoint(f"https://127.0.0.1:{server.port}/v1", {"Authorization": "Bearer up"},
                                proxy=_proxy(proxy))
            for _ in range(2):
                reply = await client.send(endpoint, "POST", "/responses", body=b"{}")
                assert (reply.status, await reply.read()) == (200, b"tunnelled")
                reply.release()
            assert len(proxy.heads) == 1  # one tunnel, reused for the second call
            assert proxy.heads[0].startswith(f"CONNECT 127.0.0.1:{server.port} HTTP/1.1\r\n".encode())
            assert f"Proxy-Authorization: {AUTH}".encode() in proxy.heads[0]
            assert all(b"proxy-authorization" not in r.raw_head.lower() for r in server.requests)
            assert server.requests[0].target == "/v1/responses"
    finally:
        await client.close()


async def test_plain_upstream_gets_absolute_form_requests_through_the_proxy(client: Http1Client) -> None:
    async with HttpProxy(required_auth=AUTH) as proxy, \
            RawHttpServer(keep_alive(lambda r: response(b"forwarded"))) as server:
        endpoint = Endpoint(f"http://127.0.0.1:{server.port}/v1", query={"api-version": "1"}, proxy=_proxy(proxy))
        reply = await client.send(endpoint, "GET", "/models")
        assert (reply.status, await reply.read()) == (200, b"forwarded")
        reply.release()
    line = proxy.heads[0].split(b"\r\n", 1)[0]
    assert line == f"GET http://127.0.0.1:{server.port}/v1/models?api-version=1 HTTP/1.1".encode()
    assert f"Proxy-Authorization: {AUTH}".encode() in proxy.heads[0]


@pytest.mark.parametrize(("required", "status"), [(AUTH, 200), (None, 403)], ids=["407-no-credentials", "403"])
async def test_a_refused_tunnel_is_a_proxy_error_that_never_shows_the_credentials(
        client: Http1Client, required: str | None, status: int) -> None:
    async with HttpProxy(required_auth=required, status=status) as proxy:
        endpoint = Endpoint("https://upstream.test/v1", proxy=_proxy(proxy, with_credentials=status != 200))
        with pytest.raises(ProxyError) as caught:
            await client.send(endpoint, "GET", "/models")
    assert ("407" if status == 200 else "403") in str(caught.value)
    assert SECRET not in str(caught.value) and str(AUTH) not in str(caught.value)
    assert isinstance(caught.value, OSError)  # the executor's failover handles it like a refused connection


async def test_a_proxy_that_closes_instead_of_answering(client: Http1Client) -> None:
    async with RawHttpServer(lambda conn: conn.read_request()) as not_a_proxy:  # reads, closes without a word
        proxy = Proxy("127.0.0.1", not_a_proxy.port)
        with pytest.raises(ProxyError, match="closed the connection"):
            await client.send(Endpoint("https://upstream.test/v1", proxy=proxy), "GET", "/models")


def test_proxy_repr_hides_credentials() -> None:
    proxy = Proxy.from_url(f"http://team:{SECRET}@proxy.corp:3128")
    assert SECRET not in repr(proxy) and "proxy.corp:3128" in repr(proxy)
