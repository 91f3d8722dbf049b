"""A serviceRef pool serves from the endpoints its Service lists: the port by name, the API path,
servers leaving and coming back (the EndpointSlice follower's reports, given here directly: the
cluster layer checks the follower against a real API server, which refuses loopback addresses)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import openai
import pytest

from fake_vllm import FakeVllmServer
from gateway_harness import GatewayHarness, config_doc
from modelgate_gateway import ids


@pytest.fixture
async def servers() -> AsyncIterator[list[FakeVllmServer]]:
    started = [FakeVllmServer(f"pod{i}") for i in range(2)]
    for server in started:
        await server.start()
    yield started
    for server in started:
        await server.close()


def _endpoint(server: FakeVllmServer) -> tuple[str, tuple[tuple[str, int], ...]]:
    assert server.server is not None
    return ("127.0.0.1", (("http", int(server.server.port)), ("metrics", 1)))


async def test_a_service_pool_serves_from_its_ready_endpoints(
    gateway: Callable[[dict[str, Any]], Awaitable[GatewayHarness]], servers: list[FakeVllmServer]
) -> None:
    dep = {
        "name": "vllm",
        "provider": "vllm",
        "serviceRef": {"namespace": "models", "name": "llama", "port": "http", "path": "/v1"},
        "model": "up",
    }
    gw = await gateway(config_doc([dep], [{"name": "llama", "targets": [{"deployment": "vllm"}]}]))
    async with gw.client(timeout=10) as client:
        with pytest.raises(openai.APIStatusError) as empty:  # nothing listed yet
            await client.responses.create(model="llama", input="hi")
        assert empty.value.status_code == 502 and "no ready server in its pool" in empty.value.message

        gw.state.servers.discovered(("models", "llama"), [_endpoint(servers[0])])
        first = await client.responses.create(model="llama", input="hi")
        assert first.output_text == "Answer from pod0."
        ref = ids.peek(first.id)
        assert ref is not None and ref.deployment == f"vllm@127.0.0.1:{servers[0].server.port}"  # type: ignore[union-attr]

        gw.state.servers.discovered(("models", "llama"), [_endpoint(servers[1])])  # pod0 replaced by pod1
        second = await client.responses.create(model="llama", input="hi")
        assert second.output_text == "Answer from pod1."
        with pytest.raises(openai.BadRequestError) as gone:
            await client.responses.create(model="llama", input="more", previous_response_id=first.id)
        assert gone.value.code == "response_server_gone" and gone.value.param == "previous_response_id"
        gw.state.servers.discovered(("models", "llama"), [_endpoint(servers[0]), _endpoint(servers[1])])
        follow = await client.responses.create(model="llama", input="more", previous_response_id=first.id)
        assert follow.output_text == "Answer from pod0."  # back in the pool: its store is still there


async def test_an_empty_pool_says_so_once_in_the_error(
    gateway: Callable[[dict[str, Any]], Awaitable[GatewayHarness]],
) -> None:
    dep = {"name": "vllm", "serviceRef": {"namespace": "models", "name": "llama", "port": 8000}, "model": "up"}
    gw = await gateway(config_doc([dep], [{"name": "llama", "targets": [{"deployment": "vllm"}]}]))
    async with gw.client(timeout=10) as client:
        with pytest.raises(openai.APIStatusError) as empty:
            await client.responses.create(model="llama", input="hi")
    assert empty.value.status_code == 502
    assert empty.value.body == {
        "message": "No deployment could take the request: vllm: no ready server in its pool.",
        "type": "upstream_error",
        "param": None,
        "code": "upstream_error",
    }
