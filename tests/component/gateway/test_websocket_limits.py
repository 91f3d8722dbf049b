"""The limits of a client WebSocket: frame size, turns in flight, idle time; lanes run side by side.

A frame over ``maxFrameBytes`` closes the socket with 1009; a turn over ``maxTurnsInFlight`` gets
an ``error`` event (429) while the others go on; an idle socket is closed with 1000. Turns of one
``stream_id`` lane run in order, lanes in parallel, each event carrying its lane's id; a client
that leaves cancels its turns' upstream calls.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from fake_responses_upstream import Behaviour
from fake_websocket_upstream import FakeWebSocketUpstream
from gateway_harness import config_doc, deployment
from websocket_client import TIMEOUT, close_code, events_until_final, final_response, turn

MOCK = {"name": "m", "provider": "mock", "model": "mock-model", "mock": {"text": "one two three four"}}


@pytest.fixture
async def ws_upstream() -> AsyncIterator[FakeWebSocketUpstream]:
    fake = FakeWebSocketUpstream("w")
    await fake.start()
    yield fake
    await fake.close()


async def test_a_frame_over_the_limit_closes_the_socket_with_1009(gateway) -> None:
    gw = await gateway(
        config_doc([MOCK], [{"name": "gpt-4o", "targets": [{"deployment": "m"}]}], websocket={"maxFrameBytes": 2048})
    )
    async with gw.client(timeout=5) as client, client.responses.connect() as conn:
        final_response(await turn(conn, model="gpt-4o", input="x" * 1500))  # under the limit: served
        await conn.response.create(model="gpt-4o", input="x" * 3000)
        assert await close_code(conn) == 1009


async def test_an_idle_socket_is_closed_with_1000_even_while_the_client_pings(gateway) -> None:
    gw = await gateway(
        config_doc(
            [MOCK], [{"name": "gpt-4o", "targets": [{"deployment": "m"}]}], websocket={"idleTimeoutSeconds": 0.3}
        )
    )
    pinging: Any = {"ping_interval": 0.05}  # websockets' keep-alive pings, far more often than the idle timeout
    async with gw.client(timeout=5) as client, client.responses.connect(websocket_connection_options=pinging) as conn:
        final_response(await turn(conn, model="gpt-4o", input="hi"))
        assert await close_code(conn) == 1000
    assert gw.registry.get_sample_value("modelgate_websocket_connections") == 0


async def test_turns_over_the_limit_get_an_error_event_and_leaving_cancels_the_rest(gateway, upstream_a) -> None:
    upstream_a.script = [Behaviour(hang=True), Behaviour(hang=True)]
    doc = config_doc(
        [deployment("a", upstream_a.base_url)],
        [{"name": "gpt-4o", "targets": [{"deployment": "a"}]}],
        websocket={"maxTurnsInFlight": 2},
    )
    gw = await gateway(doc)
    async with gw.client(timeout=5) as client:
        async with client.responses.connect() as conn:
            await conn.response.create(model="gpt-4o", input="one", stream_id="x")
            await conn.response.create(model="gpt-4o", input="two", stream_id="y")
            await conn.response.create(model="gpt-4o", input="three", stream_id="z")
            refused = await events_until_final(conn)
            assert refused[-1].type == "error" and refused[-1].status == 429
            assert refused[-1].error.code == "too_many_turns" and refused[-1].stream_id == "z"
            async with asyncio.timeout(TIMEOUT):
                while len(upstream_a.creates) < 2:  # both hanging turns reached the upstream
                    await asyncio.sleep(0.01)
        # The client left: its hanging turns' upstream calls are cancelled.
        await asyncio.wait_for(upstream_a.cancelled.wait(), TIMEOUT)


async def test_lanes_run_side_by_side_and_a_lanes_turns_in_order(gateway, ws_upstream) -> None:
    ws_upstream.script = [Behaviour(token_delay=0.01) for _ in range(3)]
    dep = deployment("w", ws_upstream.base_url, websocket=True)
    gw = await gateway(config_doc([dep], [{"name": "gpt-4o", "targets": [{"deployment": "w"}]}]))
    async with gw.client(timeout=5) as client, client.responses.connect() as conn:
        await conn.response.create(model="gpt-4o", input="a1", stream_id="a")
        await conn.response.create(model="gpt-4o", input="b1", stream_id="b")
        await conn.response.create(model="gpt-4o", input="a2", stream_id="a")
        events = await events_until_final(conn, 3)
    assert {e.stream_id for e in events} == {"a", "b"}
    lane_a = [e for e in events if e.stream_id == "a"]
    done = [i for i, e in enumerate(lane_a) if e.type == "response.completed"]
    created = [i for i, e in enumerate(lane_a) if e.type == "response.created"]
    assert len(done) == 2 and created[1] > done[0]  # a2 started after a1 ended
    assert ws_upstream.sockets == 2  # one upstream socket per lane
    inputs = {
        seen.body["input"]: socket for seen, socket in zip(ws_upstream.turns, ws_upstream.turn_sockets, strict=True)
    }
    assert inputs["a1"] == inputs["a2"] != inputs["b1"]
    assert all("stream_id" not in seen.body for seen in ws_upstream.turns)


async def test_a_context_over_the_state_limit_is_not_kept(gateway) -> None:
    doc = config_doc([MOCK], [{"name": "gpt-4o", "targets": [{"deployment": "m"}]}], websocket={"maxStateBytes": 1024})
    gw = await gateway(doc)
    async with gw.client(timeout=5) as client, client.responses.connect() as conn:
        small = final_response(await turn(conn, model="gpt-4o", input="short", store=False))
        final_response(await turn(conn, model="gpt-4o", input="on", store=False, previous_response_id=small.id))
        large = final_response(await turn(conn, model="gpt-4o", input="x" * 2000, store=False))
        refused = await turn(conn, model="gpt-4o", input="on", store=False, previous_response_id=large.id)
    assert refused[-1].type == "error" and refused[-1].status == 400
    assert refused[-1].error.code == "previous_response_not_found"
