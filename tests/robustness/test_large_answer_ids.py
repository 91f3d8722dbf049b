"""A JSON answer past 1 MiB carries only gateway ids: its previous_response_id and conversation too.

Such an answer is streamed without a parse. Before, only its top-level ``id`` was rewritten there:
the ``previous_response_id`` and the conversation id went to the client as the upstream wrote
them, while a smaller answer and a stream rewrote them. Where a field comes (before the output, or
after it, as OpenAI orders a response's fields) decides how the answer goes out: with its
``Content-Length`` (upstream's plus the ids' growth) when every rewrite is known before it starts,
chunked when a field still to come may need one. Every case is checked byte for byte.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx2
import orjson
import pytest

from gateway_harness import GatewayHarness, config_doc, deployment, gateway_conversation_id, gateway_id
from misbehaving_upstream import MisbehavingUpstream, response_object
from raw_http_server import eventually

RID = "resp_large_ids"
PREVIOUS_UP = "resp_previous_up"
CONVERSATION_UP = "conv_up_0001"
TEXT = "Lorem ipsum dolor sit amet. " * (2_500_000 // 28)  # 2.5 MB: streamed, not parsed


def _answer(field: str, value: Any, where: str) -> bytes:
    """A response object carrying ``field``: right after its id ("early") or after its output ("late")."""
    answer = response_object(RID, "up-a", TEXT)
    answer.pop(field, None)
    keys = list(answer)
    at = 1 if where == "early" else keys.index("output") + 1
    ordered = dict([*((k, answer[k]) for k in keys[:at]), (field, value), *((k, answer[k]) for k in keys[at:])])
    return orjson.dumps(ordered)


def _signed(body: bytes, *replacements: tuple[str, str]) -> bytes:
    """``body`` with each (old, new) id token replaced (each occurs once)."""
    for old, new in replacements:
        token = orjson.dumps(old)
        assert body.count(token) == 1
        body = body.replace(token, orjson.dumps(new))
    return body


async def _fetch(tmp: Path, body: bytes, call: str, **extra: Any) -> tuple[httpx2.Headers, bytes, Any]:
    """The headers, bytes and parsed response the SDK client gets for ``call`` through the gateway."""
    async with MisbehavingUpstream(answer_body=body) as upstream:
        harness = GatewayHarness(tmp, config_doc([deployment("a", upstream.url())],
                                                 [{"name": "m", "targets": [{"deployment": "a"}]}]))
        await harness.start()
        client = harness.client()
        try:
            if call == "retrieve":
                raw_call = client.responses.with_streaming_response.retrieve(gateway_id(RID, "a"))
            else:
                raw_call = client.responses.with_streaming_response.create(model="m", input="hi", **extra)
            async with raw_call as raw:
                got = await raw.read()
                parsed = await raw.parse()
                headers = raw.headers
            await eventually(lambda: len(harness.log_lines()) == 1, timeout=5)
            line = harness.log_lines()[0]
        finally:
            await client.close()
            await harness.close()
    assert line["status"] == 200 and line["response_id"] == gateway_id(RID, "a")
    if call == "create":  # the upstream's usage, found on the way
        assert line["input_tokens"] == 12 and line["output_tokens"] == 7
    return headers, got, parsed


def _assert_framing(headers: httpx2.Headers, got: bytes, fixed: bool) -> None:
    if fixed:
        assert headers["content-length"] == str(len(got))
        assert "transfer-encoding" not in headers
    else:
        assert "content-length" not in headers
        assert headers["transfer-encoding"] == "chunked"


@pytest.mark.parametrize("where", ["early", "late"])
@pytest.mark.parametrize("call", ["create", "retrieve"])
async def test_a_large_answers_previous_response_id_is_the_gateway_id(tmp_path: Path, where: str, call: str) -> None:
    previous = gateway_id(PREVIOUS_UP, "a")
    body = _answer("previous_response_id", PREVIOUS_UP, where)
    extra = {"previous_response_id": previous} if call == "create" else {}
    headers, got, parsed = await _fetch(tmp_path, body, call, **extra)
    assert got == _signed(body, (RID, gateway_id(RID, "a")), (PREVIOUS_UP, previous))
    assert parsed.previous_response_id == previous and parsed.id == gateway_id(RID, "a")
    _assert_framing(headers, got, fixed=where == "early")


@pytest.mark.parametrize("where", ["early", "late"])
@pytest.mark.parametrize("form", ["object", "string"])
async def test_a_large_answers_conversation_id_is_the_gateway_id(tmp_path: Path, where: str, form: str) -> None:
    conversation = gateway_conversation_id(CONVERSATION_UP, "a")
    body = _answer("conversation", {"id": CONVERSATION_UP} if form == "object" else CONVERSATION_UP, where)
    headers, got, parsed = await _fetch(tmp_path, body, "create", conversation=conversation)
    assert got == _signed(body, (RID, gateway_id(RID, "a")), (CONVERSATION_UP, conversation))
    assert CONVERSATION_UP.encode() not in got
    if form == "object":
        assert parsed.conversation.id == conversation
    _assert_framing(headers, got, fixed=where == "early")


async def test_a_large_answer_without_those_ids_keeps_its_length_and_null_fields(tmp_path: Path) -> None:
    """A create naming neither: nothing to rewrite but the id, so the length is known at once."""
    body = orjson.dumps({**response_object(RID, "up-a", TEXT), "conversation": None})
    headers, got, parsed = await _fetch(tmp_path, body, "create")
    assert got == _signed(body, (RID, gateway_id(RID, "a")))
    assert parsed.previous_response_id is None and parsed.conversation is None
    _assert_framing(headers, got, fixed=True)


async def test_a_late_previous_response_id_the_request_did_not_name_is_never_passed_on(tmp_path: Path) -> None:
    """The answer went out with its length when an id nobody asked for shows up after the output:
    it cannot grow, and the upstream's id must not reach the client, so the connection is cut."""
    body = _answer("previous_response_id", PREVIOUS_UP, "late")
    async with MisbehavingUpstream(answer_body=body) as upstream:
        harness = GatewayHarness(tmp_path, config_doc([deployment("a", upstream.url())],
                                                      [{"name": "m", "targets": [{"deployment": "a"}]}]))
        await harness.start()
        client = harness.client()
        got = bytearray()
        try:
            with pytest.raises(httpx2.RemoteProtocolError, match="without sending complete message body"):
                async with client.responses.with_streaming_response.create(model="m", input="hi") as raw:
                    async for piece in raw.iter_bytes():
                        got += piece
            await eventually(lambda: len(harness.log_lines()) == 1)
            line = harness.log_lines()[0]
        finally:
            await client.close()
            await harness.close()
    assert (line["status"], line["error_type"]) == (502, "upstream_stream_error")
    assert PREVIOUS_UP.encode() not in got


async def test_a_small_answers_conversation_given_as_a_string_is_the_gateway_id(tmp_path: Path) -> None:
    """Answers read whole rewrote only a ``conversation`` object's id, not a conversation string."""
    conversation = gateway_conversation_id(CONVERSATION_UP, "a")
    body = orjson.dumps({**response_object(RID, "up-a", "Short."), "conversation": CONVERSATION_UP})
    headers, got, _ = await _fetch(tmp_path, body, "create", conversation=conversation)
    assert got == _signed(body, (RID, gateway_id(RID, "a")), (CONVERSATION_UP, conversation))
    _assert_framing(headers, got, fixed=True)
