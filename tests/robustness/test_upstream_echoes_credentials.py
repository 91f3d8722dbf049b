"""An upstream that quotes the gateway's credentials back never leaks them to a client or the log.

The gateway passes upstream 4xx bodies and stream failure events on to any client; an upstream
that echoes the ``Authorization`` / ``api-key`` header it received would hand every client the
deployment's key. Each test checks that the upstream really received (and quoted) the key, that
the client sees the upstream's status and error with the key replaced by ``[redacted]``, and
that no response byte, log record or request-log line holds it in any JSON-escaped form.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import openai
import pytest

from echoing_upstream import Echo, EchoingUpstream
from gateway_harness import config_doc, deployment, harnesses

PLAIN = "sk-proj-plainUpstreamKey0123456789"
NASTY = 'sk-nasty/key+with"quote\\backslash<html>&amp=x'
"""Every character a JSON encoder may escape: ``/`` (PHP), ``"`` and ``\\``, ``<>&`` (Go)."""


@pytest.fixture
async def echo() -> AsyncIterator[EchoingUpstream]:
    upstream = EchoingUpstream()
    await upstream.start()
    yield upstream
    await upstream.close()


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator:
    async with harnesses(tmp_path) as start:
        yield start


def _doc(echo: EchoingUpstream, **extra: object) -> dict:
    return config_doc(
        [deployment("echo", echo.base_url, **extra)], [{"name": "gpt-4o", "targets": [{"deployment": "echo"}]}]
    )


async def _streamed(client: openai.AsyncOpenAI) -> bytes:
    """The raw bytes of a streamed create, as the client received them."""
    async with client.responses.with_streaming_response.create(model="gpt-4o", input="hi", stream=True) as resp:
        assert resp.status_code == 200
        return await resp.read()


async def _started(gateway, echo: EchoingUpstream, caplog: pytest.LogCaptureFixture, key: str, **extra: object):
    caplog.set_level(logging.DEBUG)
    return await gateway(_doc(echo, **extra), secrets={"upstream-key": key})


def _assert_no_key(key: str, raw: bytes, caplog: pytest.LogCaptureFixture, gw) -> None:
    """Not in the bytes, not in any JSON-decoded string of them, not in any log record or line."""
    assert key.encode() not in raw
    text = raw.decode()
    for line in [text, *text.splitlines()]:
        payload = line.removeprefix("data: ")
        try:
            decoded = json.dumps(json.loads(payload), ensure_ascii=False)
        except ValueError:
            continue
        assert key not in decoded  # catches \/, \" and \u0026-escaped copies once decoded
    for record in caplog.records:
        assert key not in record.getMessage() and key not in (record.exc_text or "")
    assert key not in json.dumps(gw.log_lines(), ensure_ascii=False)


@pytest.mark.parametrize("key", [PLAIN, NASTY], ids=["plain-key", "escaped-key"])
@pytest.mark.parametrize("style", ["json", "slashes", "html", "text"])
@pytest.mark.parametrize("status", [400, 404, 422])
async def test_a_passed_through_client_error_never_shows_the_deployment_key(
    gateway, echo, caplog, key: str, style: str, status: int
) -> None:
    echo.echo = Echo(status=status, style=style)
    gw = await _started(gateway, echo, caplog, key)
    async with gw.client() as client:
        with pytest.raises(openai.APIStatusError) as caught:
            await client.responses.create(model="gpt-4o", input="hi")
    assert echo.received == [f"Bearer {key}"]  # the upstream got the key and quoted it
    assert caught.value.status_code == status  # still the upstream's own answer, passed through
    raw = caught.value.response.content
    assert b"[redacted]" in raw and b"Invalid request. Received headers" in raw
    if style != "text":
        assert caught.value.body["type"] == "invalid_request_error"
    _assert_no_key(key, raw, caplog, gw)


async def test_azure_api_key_echoed_by_a_follow_up_call_is_redacted(gateway, echo, caplog) -> None:
    gw = await _started(
        gateway, echo, caplog, PLAIN, provider="azure-openai", queryParams={"api-version": "2025-04-01-preview"}
    )
    echo.echo = Echo(status=400, where="stream-failed")
    async with gw.client() as client:
        raw = await _streamed(client)
        created = json.loads(raw.split(b"data: ", 1)[1].split(b"\n", 1)[0])["response"]["id"]
        echo.echo = Echo(status=404)
        with pytest.raises(openai.NotFoundError) as caught:
            await client.responses.retrieve(created)
    assert echo.received == [PLAIN, PLAIN]
    assert b"[redacted]" in caught.value.response.content
    _assert_no_key(PLAIN, raw + caught.value.response.content, caplog, gw)


@pytest.mark.parametrize("key", [PLAIN, NASTY], ids=["plain-key", "escaped-key"])
@pytest.mark.parametrize(
    ("where", "style"), [("stream-error", "json"), ("stream-failed", "slashes"), ("stream-failed", "html")]
)
async def test_stream_failure_events_never_show_the_deployment_key(
    gateway, echo, caplog, key: str, where: str, style: str
) -> None:
    echo.echo = Echo(where=where, style=style)
    gw = await _started(gateway, echo, caplog, key)
    async with gw.client() as client:
        raw = await _streamed(client)
    assert echo.received == [f"Bearer {key}"]
    assert b"[redacted]" in raw and b"the key [redacted] is not allowed" in raw
    _assert_no_key(key, raw, caplog, gw)


@pytest.mark.parametrize("key", [PLAIN, NASTY], ids=["plain-key", "escaped-key"])
async def test_chat_bridge_errors_never_show_the_deployment_key(gateway, echo, caplog, key: str) -> None:
    gw = await _started(gateway, echo, caplog, key, api="chat_completions")
    async with gw.client() as client:
        echo.echo = Echo(status=400, style="slashes")
        with pytest.raises(openai.BadRequestError) as caught:
            await client.responses.create(model="gpt-4o", input="hi")
        echo.echo = Echo(where="chat-stream", style="html")
        raw = await _streamed(client)
    assert echo.received == [f"Bearer {key}"] * 2
    assert b"[redacted]" in caught.value.response.content
    failed = [json.loads(line[6:]) for line in raw.splitlines() if line.startswith(b"data: ")][-1]
    assert failed["type"] == "response.failed"
    assert "the key [redacted] is not allowed" in failed["response"]["error"]["message"]
    _assert_no_key(key, raw + caught.value.response.content, caplog, gw)


async def test_credential_like_extra_headers_are_redacted_too(gateway, echo, caplog) -> None:
    gateway_token = "gw-token-0123456789abcdef"
    gw = await _started(gateway, echo, caplog, PLAIN, headers={"x-api-key": gateway_token, "x-team": "search"})
    echo.echo = Echo(status=400)
    echo.quote_headers = ("x-api-key", "x-team")
    async with gw.client() as client:
        with pytest.raises(openai.BadRequestError) as caught:
            await client.responses.create(model="gpt-4o", input="hi")
    raw = caught.value.response.content
    assert b"x-team=search" in raw  # not a secret: left alone
    _assert_no_key(gateway_token, raw, caplog, gw)
    _assert_no_key(PLAIN, raw, caplog, gw)


@pytest.mark.parametrize("key", [PLAIN, NASTY], ids=["plain-key", "escaped-key"])
@pytest.mark.parametrize("style", ["json", "slashes", "html"])
async def test_an_upstream_that_echoes_the_key_in_a_successful_answer_never_shows_it(
    gateway, echo, caplog, key: str, style: str
) -> None:
    # "Any upstream body it passes on": a server that quotes the headers it received even when it
    # succeeds (a debugging proxy, a misconfigured server) must not hand the key to the client.
    echo.echo = Echo(where="ok", style=style)
    gw = await _started(gateway, echo, caplog, key)
    async with gw.client() as client:
        plain = await client.responses.with_raw_response.create(model="gpt-4o", input="hi")
        raw = await _streamed(client)
    assert echo.received == [f"Bearer {key}"] * 2
    answer = plain.parse()
    assert answer.status == "completed" and answer.output_text == "Hello."
    assert "[redacted]" in answer.metadata["received"]
    assert b"[redacted]" in raw and b"response.completed" in raw
    _assert_no_key(key, plain.content + raw, caplog, gw)
