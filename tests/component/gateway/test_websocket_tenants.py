"""Response ids in WebSocket frames are signed like on HTTP: a socket of one tenant cannot use another's.

Whether the id was made on a socket or over HTTP, continued from memory (``store: false``) or
upstream, another tenant's socket gets ``previous_response_not_found`` exactly as for an id that
never existed, and the owner can use its socket's ids over HTTP too.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from fake_websocket_upstream import FakeWebSocketUpstream
from gateway_harness import config_doc, deployment
from tenant_gateway import KEYS, auth, running
from websocket_client import final_response, turn


def _doc(fake: FakeWebSocketUpstream, websocket: bool) -> dict[str, Any]:
    doc = config_doc(
        [deployment("w", fake.base_url, websocket=websocket)], [{"name": "gpt-4o", "targets": [{"deployment": "w"}]}]
    )
    doc["spec"]["auth"] = auth({"alice": ("acme", ["*"]), "bob": ("globex", ["*"])})
    return doc


async def _continue_on(gw: Any, key: str, previous: str, store: bool) -> list[Any]:
    async with gw.client(api_key=KEYS[key], timeout=10) as client, client.responses.connect() as conn:
        return await turn(conn, model="gpt-4o", input="more", previous_response_id=previous, store=store)


@pytest.fixture
async def ws_upstream() -> AsyncIterator[FakeWebSocketUpstream]:
    fake = FakeWebSocketUpstream("w")
    await fake.start()
    yield fake
    await fake.close()


@pytest.mark.parametrize("websocket", [True, False], ids=["websocket-upstream", "http-upstream"])
async def test_another_tenants_socket_cannot_continue_its_responses(tmp_path: Path, ws_upstream, websocket) -> None:
    async with running(tmp_path, _doc(ws_upstream, websocket)) as gw:
        async with gw.client(api_key=KEYS["alice"], timeout=10) as alice, alice.responses.connect() as conn:
            kept = final_response(await turn(conn, model="gpt-4o", input="hi", store=True))
            memory = final_response(await turn(conn, model="gpt-4o", input="hi", store=False))
            for theirs in (kept.id, memory.id):
                refused = await _continue_on(gw, "bob", theirs, store=False)
                assert refused[-1].type == "error" and refused[-1].status == 400, refused[-1]
                assert refused[-1].error.code == "previous_response_not_found"
                assert refused[-1].error.message == f"Previous response with id '{theirs}' not found."
            # The owner's other socket continues the stored one; its id is good over HTTP too.
            final_response(await _continue_on(gw, "alice", kept.id, store=True))
            again = await alice.responses.create(model="gpt-4o", input="x", previous_response_id=kept.id)
            assert again.status == "completed"
            # The socket that made the store=false one still continues it.
            final_response(await turn(conn, model="gpt-4o", input="on", previous_response_id=memory.id))
