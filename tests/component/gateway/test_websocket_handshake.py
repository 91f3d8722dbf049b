"""The WebSocket handshake is checked like any request and refused with a clean HTTP error.

Authentication happens before the upgrade: a missing or wrong key, an expired one, or one over its
socket limit gets the OpenAI error envelope with the right status; a gateway with WebSocket mode
off answers 426 so agent clients fall back to HTTP at once. A plain GET /v1/responses is still an
unknown URL.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import orjson
import pytest
from websockets.exceptions import InvalidStatus

from gateway_harness import API_KEY, config_doc
from websocket_client import final_response, turn

MOCK = {"name": "m", "provider": "mock", "model": "mock-model"}
MODELS = [{"name": "gpt-4o", "targets": [{"deployment": "m"}]}]


async def _refused(gw: Any, api_key: str) -> tuple[int, dict[str, Any]]:
    async with gw.client(api_key=api_key, timeout=5) as client:
        with pytest.raises(InvalidStatus) as caught:
            async with client.responses.connect():
                pass
    response = caught.value.response
    return response.status_code, orjson.loads(response.body)


async def test_a_wrong_key_is_refused_before_the_upgrade(gateway) -> None:
    gw = await gateway(config_doc([MOCK], MODELS))
    status, body = await _refused(gw, "sk-wrong-key-123")
    assert status == 401
    assert set(body["error"]) == {"message", "type", "param", "code"} and body["error"]["code"] == "invalid_api_key"
    assert "sk-wrong-key-123" not in orjson.dumps(body).decode()


async def test_a_handshake_without_a_key_is_refused_with_the_envelope(gateway) -> None:
    gw = await gateway(config_doc([MOCK], MODELS))
    upgrade = {
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version": "13",
    }
    async with aiohttp.ClientSession() as session:
        async with session.get(gw.base_url + "/responses", headers=upgrade, timeout=aiohttp.ClientTimeout(5)) as resp:
            assert resp.status == 401
            assert (await resp.json())["error"]["code"] == "invalid_api_key"


async def test_an_expired_key_is_refused(gateway) -> None:
    doc = config_doc([MOCK], MODELS)
    doc["spec"]["auth"]["keys"][0]["expiresAt"] = "2020-01-01T00:00:00Z"
    gw = await gateway(doc)
    status, body = await _refused(gw, API_KEY)
    assert status == 401 and body["error"]["code"] == "expired_api_key"


async def test_websocket_mode_off_answers_426_and_http_still_serves(gateway) -> None:
    gw = await gateway(config_doc([MOCK], MODELS, websocket={"enabled": False}))
    status, body = await _refused(gw, API_KEY)
    assert status == 426 and body["error"]["code"] == "websocket_mode_disabled"
    async with gw.client(timeout=5) as client:
        assert (await client.responses.create(model="gpt-4o", input="hi")).status == "completed"


async def test_sockets_over_the_key_limit_get_429_until_one_closes(gateway) -> None:
    gw = await gateway(config_doc([MOCK], MODELS, websocket={"maxSocketsPerKey": 1}))
    async with gw.client(timeout=5) as client:
        async with client.responses.connect() as first:
            assert gw.registry.get_sample_value("modelgate_websocket_connections") == 1
            status, body = await _refused(gw, API_KEY)
            assert status == 429 and body["error"]["code"] == "too_many_websockets"
            final_response(await turn(first, model="gpt-4o", input="still served"))
        async with client.responses.connect() as again:  # the first one closed: room again
            final_response(await turn(again, model="gpt-4o", input="hi"))


async def test_a_plain_get_of_responses_is_still_an_unknown_url(gateway) -> None:
    gw = await gateway(config_doc([MOCK], MODELS))
    async with aiohttp.ClientSession() as session:
        async with session.get(gw.base_url + "/responses", headers={"Authorization": f"Bearer {API_KEY}"}) as resp:
            assert resp.status == 404
            assert (await resp.json())["error"]["code"] == "unknown_url"


async def test_an_allowlisted_key_gets_an_error_event_for_another_model(gateway) -> None:
    doc = config_doc([MOCK], [*MODELS, {"name": "other", "targets": [{"deployment": "m"}]}])
    doc["spec"]["auth"]["keys"][0]["models"] = ["gpt-4o"]
    gw = await gateway(doc)
    async with gw.client(timeout=5) as client, client.responses.connect() as conn:
        refused = await turn(conn, model="other", input="hi")
        assert refused[-1].type == "error" and refused[-1].status == 403
        assert refused[-1].error.code == "model_not_allowed"
        final_response(await turn(conn, model="gpt-4o", input="the socket still serves"))


async def test_a_broken_upgrade_request_gets_the_envelope(gateway) -> None:
    gw = await gateway(config_doc([MOCK], MODELS))
    broken = {"Upgrade": "websocket", "Connection": "Upgrade", "Authorization": f"Bearer {API_KEY}"}  # no key, version
    async with aiohttp.ClientSession() as session:
        async with session.get(gw.base_url + "/responses", headers=broken, timeout=aiohttp.ClientTimeout(5)) as resp:
            assert resp.status == 400
            assert (await resp.json())["error"]["type"] == "invalid_request_error"
    assert gw.registry.get_sample_value("modelgate_websocket_connections") == 0
