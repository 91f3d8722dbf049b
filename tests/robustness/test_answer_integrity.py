"""What an upstream answers reaches the client intact, signed where ids are, or as a clear error.

Seen before: the id rewrite replaced the upstream id's text everywhere (an id ``resp`` corrupted
``"object":"response"`` and grew an 8 MB answer to 92 MB); an answer cut short came back as a 200
carrying the unsigned upstream id; a redirect was relayed without its ``Location``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import openai
import orjson
import pytest

from gateway_harness import GatewayHarness, config_doc, deployment, gateway_id
from misbehaving_upstream import Fault, MisbehavingUpstream, response_object
from raw_http_server import eventually


def _signed(rid: str, dep: str = "a") -> str:
    return gateway_id(rid, dep)


async def _gateway(tmp: Path, *urls: str) -> GatewayHarness:
    names = "ab"[:len(urls)]
    doc = config_doc([deployment(n, u) for n, u in zip(names, urls, strict=True)],
                     [{"name": "m", "targets": [{"deployment": n} for n in names], "strategy": "least-outstanding",
                       "retry": {"maxAttempts": len(urls)}, "cooldown": {"consecutiveFailures": 1000}}])
    harness = GatewayHarness(tmp, doc)
    await harness.start()
    return harness


@pytest.fixture
async def upstream() -> AsyncIterator[MisbehavingUpstream]:
    async with MisbehavingUpstream() as up:
        yield up


async def _create(harness: GatewayHarness, **extra: Any) -> tuple[bytes, Any]:
    client = harness.client()
    try:
        raw = await client.responses.with_raw_response.create(model="m", input="hi", **extra)
        return await raw.http_response.aread(), raw.parse()
    finally:
        await client.close()


async def test_an_id_that_is_a_substring_of_field_names_is_rewritten_only_where_it_is_the_id(
        tmp_path: Path, upstream: MisbehavingUpstream) -> None:
    upstream.response_id = "resp"
    upstream.answer_text = "resp " * 2000 + '"resp"'
    harness = await _gateway(tmp_path, upstream.url())
    try:
        body, parsed = await _create(harness)
        original = upstream.json_body("up-a")
        assert parsed.id == _signed("resp") and parsed.object == "response"
        assert parsed.output_text == upstream.answer_text
        assert parsed.output[0].id == "msg_resp"
        assert len(body) == len(original) + len(_signed("resp")) - len("resp")
        assert body == original.replace(b'{"id":"resp"', b'{"id":"' + _signed("resp").encode() + b'"', 1)
        client = harness.client()
        try:  # the signed id leads back to the upstream's own
            await client.responses.retrieve(parsed.id)
        finally:
            await client.close()
        assert upstream.server.requests[-1].target == "/v1/responses/resp"
    finally:
        await harness.close()


async def test_an_id_that_is_not_the_first_key_is_rewritten(tmp_path: Path, upstream: MisbehavingUpstream) -> None:
    answer = response_object("resp_later", "up-a", "hello")
    upstream.answer_body = orjson.dumps({k: v for k, v in answer.items() if k != "id"} | {"id": "resp_later"})
    harness = await _gateway(tmp_path, upstream.url())
    try:
        body, parsed = await _create(harness)
        assert parsed.id == _signed("resp_later")
        assert body.endswith(b',"id":"' + _signed("resp_later").encode() + b'"}')
    finally:
        await harness.close()


@pytest.mark.parametrize("how", ["shorter-than-its-content-length", "complete-but-not-json"])
async def test_a_broken_answer_is_a_502_never_a_200(tmp_path: Path, upstream: MisbehavingUpstream, how: str) -> None:
    if how == "shorter-than-its-content-length":
        upstream.fault = Fault.SHORT_BODY
    else:  # framed properly, but the JSON stops half-way
        upstream.answer_body = upstream.json_body("up-a")[:-25]
    harness = await _gateway(tmp_path, upstream.url())
    client = harness.client()
    try:
        with pytest.raises(openai.APIStatusError) as caught:
            await client.responses.create(model="m", input="hi")
        assert caught.value.status_code == 502
        error = caught.value.response.json()["error"]
        assert set(error) == {"message", "type", "param", "code"} and error["code"] == "upstream_error"
        assert upstream.response_id not in caught.value.response.text
        await eventually(lambda: len(harness.log_lines()) == 1)
        assert harness.log_lines()[0]["status"] == 502
    finally:
        await client.close()
        await harness.close()


async def test_a_redirect_is_an_upstream_failure_that_fails_over(tmp_path: Path) -> None:
    async with MisbehavingUpstream(Fault.REDIRECT) as redirecting, MisbehavingUpstream() as healthy:
        harness = await _gateway(tmp_path, redirecting.url(), healthy.url())
        client = harness.client()
        try:
            for _ in range(4):  # whichever deployment is picked first, the answer comes from the healthy one
                answer = await client.responses.create(model="m", input="hi")
                assert answer.id == _signed(healthy.response_id, "b")
            healthy.fault = Fault.REDIRECT
            with pytest.raises(openai.APIStatusError) as caught:
                await client.responses.create(model="m", input="hi")
            assert caught.value.status_code == 502
            assert "location" not in caught.value.response.headers
            assert "returned HTTP 301" in caught.value.response.json()["error"]["message"]
            await eventually(lambda: len(harness.log_lines()) == 5)
            attempts = harness.log_lines()[-1]["attempt_path"]
            assert [a["status"] for a in attempts] == [301, 301]
        finally:
            await client.close()
            await harness.close()
