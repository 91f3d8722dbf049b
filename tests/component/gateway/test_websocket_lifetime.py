"""A client WebSocket lives at most ``maxSocketSeconds`` (OpenAI closes its sockets after 60 minutes).

An idle socket closes with 1001 (going away) when its lifetime ends. A socket with a turn in
flight lets it finish; a turn sent meanwhile gets OpenAI's ``websocket_connection_limit_reached``
error event (clients reconnect on it), and the socket closes with 1001 once the turn ended.
"""

from __future__ import annotations

import asyncio
import time

from fake_responses_upstream import Behaviour
from gateway_harness import config_doc, deployment
from websocket_client import TIMEOUT, close_code, events_until_final, final_response, turn

MOCK = {"name": "m", "provider": "mock", "model": "mock-model", "mock": {"text": "one two three"}}
LIFETIME = 0.3


async def test_an_idle_socket_closes_with_1001_at_the_end_of_its_lifetime(gateway) -> None:
    models = [{"name": "gpt-4o", "targets": [{"deployment": "m"}]}]
    gw = await gateway(config_doc([MOCK], models, websocket={"maxSocketSeconds": LIFETIME}))
    async with gw.client(timeout=5) as client, client.responses.connect() as conn:
        opened = time.monotonic()
        final_response(await turn(conn, model="gpt-4o", input="hi"))
        assert await close_code(conn) == 1001
        assert time.monotonic() - opened < TIMEOUT  # the lifetime, not the 600 s idle timeout
    assert gw.registry.get_sample_value("modelgate_websocket_connections") == 0


async def test_a_turn_in_flight_finishes_then_the_socket_closes_with_1001(gateway, upstream_a) -> None:
    resume = asyncio.Event()
    upstream_a.script = [Behaviour(stall_after_deltas=1, resume=resume)]
    doc = config_doc(
        [deployment("a", upstream_a.base_url)],
        [{"name": "gpt-4o", "targets": [{"deployment": "a"}]}],
        websocket={"maxSocketSeconds": LIFETIME, "maxTurnsInFlight": 1},
    )
    gw = await gateway(doc)
    async with gw.client(timeout=5) as client, client.responses.connect() as conn:
        await conn.response.create(model="gpt-4o", input="long", stream_id="a")
        # While the turn stalls, probe with a second turn: over maxTurnsInFlight it gets 429 at once,
        # until the lifetime ended; then the socket's own error (bounded poll, one answer per probe).
        code = None
        async with asyncio.timeout(TIMEOUT):
            while code != "websocket_connection_limit_reached":
                await conn.response.create(model="gpt-4o", input="probe", stream_id="b")
                [refused] = [e for e in await events_until_final(conn) if e.type == "error"]
                assert refused.status in (429, 400), refused
                code = refused.error.code
        assert refused.status == 400 and refused.error.type == "invalid_request_error"
        resume.set()
        events = await events_until_final(conn)
        assert events[-1].type == "response.completed" and events[-1].stream_id == "a"
        assert await close_code(conn) == 1001
    assert len(upstream_a.creates) == 1  # the refused probes cost the upstream nothing
