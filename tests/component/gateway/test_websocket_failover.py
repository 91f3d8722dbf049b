"""WebSocket turns fail over before the first event, like HTTP requests before the first byte.

A deployment that speaks WebSocket mode may fail at the handshake (refused, an HTTP error) or
answer a turn with an ``error`` event instead of events: a server error or rate limit moves the
turn to the next deployment, invisibly to the client; the client's own fault (a 4xx) is passed on
as an ``error`` event and the socket keeps serving.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest

from fake_responses_upstream import Behaviour
from fake_websocket_upstream import FakeWebSocketUpstream
from gateway_harness import config_doc, deployment
from raw_http_server import eventually
from websocket_client import final_response, turn


@pytest.fixture
async def ws_upstream() -> AsyncIterator[FakeWebSocketUpstream]:
    fake = FakeWebSocketUpstream("w")
    await fake.start()
    yield fake
    await fake.close()


def _doc(first_url: str, upstream_b: Any) -> dict[str, Any]:
    return config_doc(
        [deployment("w", first_url, websocket=True), deployment("b", upstream_b.base_url)],
        [{"name": "gpt-4o", "targets": [{"deployment": "w", "weight": 1}, {"deployment": "b", "weight": 0}]}],
    )


def _dead_url() -> str:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens here any more: connection refused
    return f"http://127.0.0.1:{port}/v1"


async def _one_turn(gw: Any) -> list[Any]:
    async with gw.client(timeout=10) as client, client.responses.connect() as conn:
        return await turn(conn, model="gpt-4o", input="hi")


async def _attempts(gw: Any) -> list[dict[str, Any]]:
    def turns() -> list[dict[str, Any]]:
        return [line for line in gw.log_lines() if line.get("transport") == "websocket"]

    await eventually(lambda: bool(turns()), timeout=5)
    return turns()


@pytest.mark.parametrize("status", [500, 503, 429])
async def test_an_error_event_before_the_first_event_fails_over(gateway, ws_upstream, upstream_b, status) -> None:
    ws_upstream.script = [Behaviour(status=status)]
    gw = await gateway(_doc(ws_upstream.base_url, upstream_b))
    events = await _one_turn(gw)
    assert [e.type for e in events if e.type == "error"] == []
    assert final_response(events).output_text == "Bravo replies with a different sentence here"
    assert len(ws_upstream.turns) == 1 and len(upstream_b.creates) == 1
    line = (await _attempts(gw))[0]
    assert line["attempts"] == 2 and line["deployment"] == "b" and line["status"] == 200


async def test_a_refused_handshake_fails_over(gateway, ws_upstream, upstream_b) -> None:
    ws_upstream.refuse_handshake = 503
    gw = await gateway(_doc(ws_upstream.base_url, upstream_b))
    events = await _one_turn(gw)
    assert final_response(events).output_text == "Bravo replies with a different sentence here"
    assert ws_upstream.sockets == 0 and len(upstream_b.creates) == 1


async def test_an_unreachable_websocket_upstream_fails_over(gateway, upstream_b) -> None:
    gw = await gateway(_doc(_dead_url(), upstream_b))
    events = await _one_turn(gw)
    assert final_response(events).output_text == "Bravo replies with a different sentence here"
    assert (await _attempts(gw))[0]["attempt_path"][0]["outcome"] == "connect_error"


async def test_the_clients_fault_is_an_error_event_and_the_socket_serves_on(gateway, ws_upstream, upstream_b) -> None:
    bad = {"error": {"message": "Invalid 'temperature'.", "type": "invalid_request_error", "param": "temperature"}}
    ws_upstream.script = [Behaviour(status=400, error_body=bad)]
    gw = await gateway(_doc(ws_upstream.base_url, upstream_b))
    async with gw.client(timeout=10) as client, client.responses.connect() as conn:
        refused = await turn(conn, model="gpt-4o", input="hi", temperature=9)
        assert refused[-1].type == "error" and refused[-1].status == 400
        assert refused[-1].error.param == "temperature" and refused[-1].error.message == "Invalid 'temperature'."
        assert final_response(await turn(conn, model="gpt-4o", input="hi")).output_text.startswith("Hello over")
    assert not upstream_b.creates


async def test_a_lane_stays_on_its_websocket_deployment_and_a_fresh_turn_still_fails_over(
    gateway, ws_upstream, upstream_b
) -> None:
    def doc(weight_b: float) -> dict[str, Any]:
        targets = [{"deployment": "w", "weight": 1}, {"deployment": "b", "weight": weight_b}]
        deps = [deployment("w", ws_upstream.base_url, websocket=True), deployment("b", upstream_b.base_url)]
        return config_doc(deps, [{"name": "gpt-4o", "targets": targets}])

    gw = await gateway(doc(0))
    async with gw.client(timeout=10) as client, client.responses.connect() as conn:
        assert final_response(await turn(conn, model="gpt-4o", input="hi")).output_text.startswith("Hello over")
        checksum = gw.state.current().checksum
        gw.write(doc(1_000_000))  # balancing alone would now send (nearly) every turn to b
        await gw.wait_for_checksum_change(checksum)
        for _ in range(3):  # the lane keeps its deployment, and its upstream socket
            assert final_response(await turn(conn, model="gpt-4o", input="hi")).output_text.startswith("Hello over")
        assert ws_upstream.sockets == 1 and not upstream_b.creates
        ws_upstream.script = [Behaviour(status=503)]  # a fresh turn refused by the lane's deployment
        moved = final_response(await turn(conn, model="gpt-4o", input="hi"))
        assert moved.output_text == "Bravo replies with a different sentence here"


async def test_an_upstream_socket_at_its_lifetime_limit_is_replaced_for_the_next_turn(
    gateway, ws_upstream, upstream_b
) -> None:
    limit = {
        "error": {
            "message": "Responses websocket connection limit reached (60 minutes).",
            "type": "invalid_request_error",
            "code": "websocket_connection_limit_reached",
        }
    }
    ws_upstream.script = [Behaviour(), Behaviour(status=400, error_body=limit)]
    gw = await gateway(_doc(ws_upstream.base_url, upstream_b))
    async with gw.client(timeout=10) as client, client.responses.connect() as conn:
        final_response(await turn(conn, model="gpt-4o", input="hi"))
        ended = await turn(conn, model="gpt-4o", input="hi")
        assert ended[-1].type == "error" and ended[-1].error.code == "websocket_connection_limit_reached"
        final_response(await turn(conn, model="gpt-4o", input="hi"))
    assert ws_upstream.turn_sockets == [0, 0, 1]  # the next turn had a new upstream socket
