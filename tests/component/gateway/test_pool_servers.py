"""A pool deployment over several vLLM-like servers on loopback, each with its own response store.

Follow-ups reach the server that holds the response; a saturated server gets less traffic; a
server whose metrics fail is judged by the gateway's in-flight count; one that left gives a clear
error; a failing server cools down on its own while the others serve.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import openai
import pytest
from prometheus_client import CollectorRegistry

from fake_responses_upstream import Behaviour
from fake_vllm import FakeVllmServer
from gateway_harness import GatewayHarness, config_doc
from modelgate_gateway import ids
from websocket_client import final_response, turn


@pytest.fixture
async def servers() -> AsyncIterator[list[FakeVllmServer]]:
    started = [FakeVllmServer(f"pod{i}") for i in range(3)]
    for server in started:
        await server.start()
    yield started
    for server in started:
        await server.close()


def _pool_doc(servers: list[FakeVllmServer], load_metrics: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    dep: dict[str, Any] = {"name": "vllm", "provider": "vllm", "baseUrls": [s.base_url for s in servers], "model": "up"}
    if load_metrics is not None:
        dep["loadMetrics"] = load_metrics
    return config_doc([dep], [{"name": "llama", "targets": [{"deployment": "vllm"}]}], **spec)


def _server_of(response_id: str, servers: list[FakeVllmServer]) -> FakeVllmServer:
    ref = ids.peek(response_id)
    assert ref is not None and ref.deployment.startswith("vllm@")
    port = int(ref.deployment.rsplit(":", 1)[1])
    return next(s for s in servers if s.server is not None and s.server.port == port)


def _sample(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


async def _until(check: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    async def poll() -> None:
        while not check():
            await asyncio.sleep(0.02)

    try:
        await asyncio.wait_for(poll(), timeout)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


async def test_follow_ups_always_reach_the_server_that_holds_the_response(
    gateway: Callable[[dict[str, Any]], Awaitable[GatewayHarness]], servers: list[FakeVllmServer]
) -> None:
    gw = await gateway(_pool_doc(servers))
    async with gw.client(timeout=10) as client:
        streamed = await client.responses.create(model="llama", input="streamed", stream=True)
        created = [[event async for event in streamed][-1].response]
        for turn in range(60):  # until every server holds some (picks are random: bounded)
            if {_server_of(r.id, servers).name for r in created} == {"pod0", "pod1", "pod2"}:
                break
            created.append(await client.responses.create(model="llama", input=f"turn {turn}"))
        assert {_server_of(r.id, servers).name for r in created} == {"pod0", "pod1", "pod2"}
        for response in created:
            holder = _server_of(response.id, servers)
            assert ids.peek(response.id).upstream_id in holder.stored  # type: ignore[union-attr]
            follow = await client.responses.create(model="llama", input="next", previous_response_id=response.id)
            assert _server_of(follow.id, servers) is holder
            assert (await client.responses.retrieve(response.id)).id == response.id
            items = await client.responses.input_items.list(response.id)
            assert items.data
    for server in servers:  # no follow-up ever reached a server that did not hold its response
        assert all(seen.path == "/v1/responses" or seen.path.split("/")[3] in server.stored for seen in server.seen)
        assert all(
            c.body is None or c.body.get("previous_response_id") in (None, *server.stored) for c in server.creates
        )


async def test_a_saturated_server_gets_no_traffic_while_others_are_idle(
    gateway: Callable[[dict[str, Any]], Awaitable[GatewayHarness]], servers: list[FakeVllmServer]
) -> None:
    servers[0].waiting = 40
    gw = await gateway(_pool_doc(servers, {"intervalSeconds": 0.1, "timeoutSeconds": 2}))
    registry = gw.registry
    member = f"127.0.0.1:{servers[0].server.port}"  # type: ignore[union-attr]
    await _until(
        lambda: _sample(registry, "modelgate_pool_server_queue", deployment="vllm", server=member) == 40,
        "the first metrics reading",
    )
    async with gw.client(timeout=10) as client:
        served = Counter(
            [_server_of((await client.responses.create(model="llama", input="hi")).id, servers).name for _ in range(30)]
        )
    assert served["pod0"] == 0 and served["pod1"] + served["pod2"] == 30
    assert _sample(registry, "modelgate_pool_server_metrics_fresh", deployment="vllm", server=member) == 1
    assert _sample(registry, "modelgate_pool_servers", deployment="vllm") == 3
    # The queue drains: within a reading or two the server takes traffic again.
    servers[0].waiting = 0
    await _until(
        lambda: _sample(registry, "modelgate_pool_server_queue", deployment="vllm", server=member) == 0,
        "the drained reading",
    )
    async with gw.client(timeout=10) as client:
        again = Counter(
            [_server_of((await client.responses.create(model="llama", input="hi")).id, servers).name for _ in range(30)]
        )
    assert again["pod0"] > 0


async def test_a_server_whose_metrics_fail_is_judged_by_in_flight_requests(
    gateway: Callable[[dict[str, Any]], Awaitable[GatewayHarness]], servers: list[FakeVllmServer]
) -> None:
    servers[1].metrics_status = 500
    gw = await gateway(_pool_doc(servers, {"intervalSeconds": 0.1, "timeoutSeconds": 2}))
    failing = f"127.0.0.1:{servers[1].server.port}"  # type: ignore[union-attr]
    healthy = f"127.0.0.1:{servers[0].server.port}"  # type: ignore[union-attr]
    await _until(lambda: servers[1].metrics_reads >= 2, "two reads of the failing metrics")
    await _until(
        lambda: _sample(gw.registry, "modelgate_pool_server_metrics_fresh", deployment="vllm", server=healthy) == 1,
        "a reading of a healthy server",
    )
    assert _sample(gw.registry, "modelgate_pool_server_metrics_fresh", deployment="vllm", server=failing) == 0
    async with gw.client(timeout=10) as client:
        served = Counter(
            [_server_of((await client.responses.create(model="llama", input="hi")).id, servers).name for _ in range(30)]
        )
    assert served["pod1"] > 0  # still served: its load is the gateway's own in-flight count (0)


async def test_a_server_that_left_the_pool_gives_a_clear_error(
    gateway: Callable[[dict[str, Any]], Awaitable[GatewayHarness]], servers: list[FakeVllmServer]
) -> None:
    gw = await gateway(_pool_doc(servers))
    async with gw.client(timeout=10) as client:
        created = [await client.responses.create(model="llama", input="first")]
        while not {servers[0], servers[2]} <= {_server_of(r.id, servers) for r in created} and len(created) < 60:
            created.append(await client.responses.create(model="llama", input="more"))
        gone = next(r for r in created if _server_of(r.id, servers) is servers[2])
        old = gw.state.runtime.checksum  # type: ignore[union-attr]
        gw.write(_pool_doc(servers[:2]))  # pod2 scaled away
        await gw.wait_for_checksum_change(old)
        with pytest.raises(openai.NotFoundError) as retrieved:
            await client.responses.retrieve(gone.id)
        assert retrieved.value.code == "response_server_gone"
        assert "is no longer running" in retrieved.value.message
        with pytest.raises(openai.BadRequestError) as continued:
            await client.responses.create(model="llama", input="next", previous_response_id=gone.id)
        assert continued.value.code == "response_server_gone"
        assert continued.value.param == "previous_response_id"
        kept = next(r for r in created if _server_of(r.id, servers) is servers[0])
        assert (await client.responses.retrieve(kept.id)).id == kept.id
    assert not any(seen.path.startswith("/v1/responses/") for seen in servers[2].seen)


async def test_a_failing_server_cools_down_alone_and_the_request_moves_to_another(
    gateway: Callable[[dict[str, Any]], Awaitable[GatewayHarness]], servers: list[FakeVllmServer]
) -> None:
    servers[0].script = [Behaviour(status=500)] * 50
    doc = _pool_doc(servers)
    doc["spec"]["models"][0]["cooldown"] = {"consecutiveFailures": 1, "durationSeconds": 60}
    gw = await gateway(doc)
    async with gw.client(timeout=10) as client:
        served = Counter(
            [_server_of((await client.responses.create(model="llama", input="hi")).id, servers).name for _ in range(20)]
        )
    assert served["pod0"] == 0 and served["pod1"] + served["pod2"] == 20
    assert len(servers[0].creates) == 1  # tried once, then cooled down on its own
    member = f"vllm@127.0.0.1:{servers[0].server.port}"  # type: ignore[union-attr]
    assert gw.state.board.cooling_down(member, time.monotonic())
    assert not gw.state.board.cooling_down("vllm", time.monotonic())  # the deployment itself serves on


async def test_a_session_stays_on_one_server(
    gateway: Callable[[dict[str, Any]], Awaitable[GatewayHarness]], servers: list[FakeVllmServer]
) -> None:
    gw = await gateway(_pool_doc(servers))
    async with gw.client(timeout=10) as client:
        for user in ("alice", "bob", "carol"):
            homes = {
                _server_of(
                    (await client.responses.create(model="llama", input="hi", prompt_cache_key=user)).id, servers
                ).name
                for _ in range(6)
            }
            assert len(homes) == 1


async def test_a_conversation_stays_with_the_server_that_holds_it(
    gateway: Callable[[dict[str, Any]], Awaitable[GatewayHarness]], servers: list[FakeVllmServer]
) -> None:
    gw = await gateway(_pool_doc(servers))
    async with gw.client(timeout=10) as client:
        conversation = await client.conversations.create(metadata={"topic": "pods"})
        holders = [s for s in servers if s.conversations]
        assert len(holders) == 1
        for turn in range(6):
            answer = await client.responses.create(model="llama", input=f"turn {turn}", conversation=conversation.id)
            assert _server_of(answer.id, servers) is holders[0]
        assert (await client.conversations.retrieve(conversation.id)).metadata == {"topic": "pods"}


async def test_a_hanging_metrics_endpoint_is_given_up_on_time_and_read_again_later(
    gateway: Callable[[dict[str, Any]], Awaitable[GatewayHarness]], servers: list[FakeVllmServer]
) -> None:
    servers[2].metrics_hang = True
    servers[2].waiting = 30
    gw = await gateway(_pool_doc(servers, {"intervalSeconds": 0.1, "timeoutSeconds": 0.2}))
    member = f"127.0.0.1:{servers[2].server.port}"  # type: ignore[union-attr]
    await _until(lambda: servers[2].metrics_reads >= 3, "three reads, each given up after 0.2 s")
    assert _sample(gw.registry, "modelgate_pool_server_metrics_fresh", deployment="vllm", server=member) == 0
    async with gw.client(timeout=10) as client:  # requests are never held up by a metrics read
        await asyncio.wait_for(client.responses.create(model="llama", input="hi"), 5)
    servers[2].metrics_hang = False
    await _until(
        lambda: _sample(gw.registry, "modelgate_pool_server_queue", deployment="vllm", server=member) == 30,
        "a reading once the endpoint answers again",
    )


async def test_a_pinned_follow_up_is_retried_on_its_own_server_after_a_transient_failure(
    gateway: Callable[[dict[str, Any]], Awaitable[GatewayHarness]], servers: list[FakeVllmServer]
) -> None:
    gw = await gateway(_pool_doc(servers))
    async with gw.client(timeout=10) as client:
        first = await client.responses.create(model="llama", input="hi")
        holder = _server_of(first.id, servers)
        holder.script = [Behaviour(status=503)]
        follow = await client.responses.create(model="llama", input="next", previous_response_id=first.id)
    assert _server_of(follow.id, servers) is holder
    upstream_id = ids.peek(first.id).upstream_id  # type: ignore[union-attr]
    assert [c.body["previous_response_id"] for c in holder.creates[-2:]] == [upstream_id] * 2  # type: ignore[index]
    others = [c for s in servers if s is not holder for c in s.creates]
    assert not [c for c in others if c.body and c.body.get("previous_response_id")]  # never sent elsewhere


async def test_websocket_turns_continue_on_the_server_that_holds_the_response(
    gateway: Callable[[dict[str, Any]], Awaitable[GatewayHarness]], servers: list[FakeVllmServer]
) -> None:
    gw = await gateway(_pool_doc(servers))
    async with gw.client(timeout=10) as client, client.responses.connect() as conn:
        first = final_response(await turn(conn, model="llama", input="hi"))
        holder = _server_of(first.id, servers)
        for _ in range(3):
            following = final_response(await turn(conn, model="llama", input="next", previous_response_id=first.id))
            assert _server_of(following.id, servers) is holder
