"""Client-supplied bytes can break neither /metrics, nor the request log, nor authentication.

A real gateway process; hostile requests are written on raw sockets (the SDK cannot send bytes
that are not UTF-8), normal ones with the official SDK. After each hostile request a scrape must
be a 200, and every request has exactly one log line.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import orjson
import pytest
from openai import AsyncOpenAI

from gateway_process import GatewayProcess
from mock_config import API_KEY, mock_config
from raw_client import connect, error_of, exchange, metric, parse_response, read_until_closed

BAD_BYTES = b"caf\xe9-\xff\xfe"  # Latin-1 "é" and two bytes that are never UTF-8


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    config = mock_config(
        tmp_path_factory.mktemp("hostile") / "config.yaml",
        words=40,
        token_delay=0.05,
        limits={"maxRequestBodyBytes": 4096},
    )
    process = GatewayProcess(config, "--client-body-timeout-seconds", "0.5")
    process.start()
    yield process
    process.stop()


def _post(body: bytes, *headers: bytes, path: bytes = b"/v1/responses") -> bytes:
    return (
        b"POST "
        + path
        + b" HTTP/1.1\r\nHost: gateway\r\nConnection: close\r\nContent-Type: application/json\r\n"
        + b"".join(h + b"\r\n" for h in headers)
        + b"Content-Length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
        + body
    )


def _create(request_id: str, *headers: bytes, **fields: object) -> bytes:
    body = orjson.dumps({"model": "gpt-4o", "input": "hi", **fields})
    return _post(body, b"Authorization: Bearer " + API_KEY.encode(), b"X-Request-Id: " + request_id.encode(), *headers)


async def _log_line(gateway: GatewayProcess, request_id: str) -> dict[str, object]:
    """The request's log line, once flushed (every 0.2 s); fails if there is not exactly one."""
    deadline = time.monotonic() + 5
    while True:
        lines = [line for line in gateway.log_lines() if line["request_id"] == request_id]
        if lines or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    assert len(lines) == 1, lines
    return lines[0]


async def test_an_end_user_header_that_is_not_utf8_is_served_logged_and_scraped(gateway: GatewayProcess) -> None:
    status, _, body = await exchange(gateway.port, _create("bad-end-user", b"X-Modelgate-End-User: " + BAD_BYTES))
    assert status == 200 and orjson.loads(body)["status"] == "completed"
    text = gateway.scrape()  # a 200, and the label shows the bytes the client sent
    shown = "caf\\xe9-\\xff\\xfe"
    cost = metric(
        text,
        "modelgate_cost_usd_total",
        model="gpt-4o",
        deployment="mock",
        key="robust",
        tenant="_none",
        end_user=shown.replace("\\", "\\\\"),
        estimated="false",
        operation="create",
        tier="default",
    )
    assert cost is not None
    assert (await _log_line(gateway, "bad-end-user"))["end_user"] == shown
    async with AsyncOpenAI(base_url=gateway.base_url, api_key=API_KEY, max_retries=0) as client:
        await client.responses.create(model="gpt-4o", input="after", extra_headers={"X-Request-Id": "after-bad"})
    assert (await _log_line(gateway, "after-bad"))["status"] == 200
    gateway.scrape()


async def test_control_characters_in_body_end_users_are_escaped(gateway: GatewayProcess) -> None:
    for request_id, field in (("ctl-user", "user"), ("ctl-safety", "safety_identifier")):
        status, _, _ = await exchange(gateway.port, _create(request_id, **{field: "a\x00b\nc\x7f"}))
        assert status == 200
        assert (await _log_line(gateway, request_id))["end_user"] == "a\\x00b\\x0ac\\x7f"
    assert 'end_user="a\\\\x00b\\\\x0ac\\\\x7f"' in gateway.scrape()


@pytest.mark.parametrize(
    "header", [b"Authorization: Bearer sk-" + BAD_BYTES, b"api-key: sk-" + BAD_BYTES, b"Authorization: " + BAD_BYTES]
)
async def test_credentials_that_are_not_utf8_get_a_401(gateway: GatewayProcess, header: bytes) -> None:
    request_id = f"bad-key-{header[:3].decode()}-{len(header)}"
    body = orjson.dumps({"model": "gpt-4o", "input": "hi"})
    status, _, answer = await exchange(gateway.port, _post(body, header, b"X-Request-Id: " + request_id.encode()))
    assert status == 401
    assert error_of(answer)["code"] == "invalid_api_key"
    assert (await _log_line(gateway, request_id))["status"] == 401
    assert "Traceback" not in gateway.stderr_text()
    gateway.scrape()


async def test_every_request_gets_exactly_one_log_line(gateway: GatewayProcess) -> None:
    auth = b"Authorization: Bearer " + API_KEY.encode()
    cases: dict[str, tuple[bytes, int]] = {
        "ok-1": (_create("ok-1"), 200),
        "no-key": (_post(b"{}", b"X-Request-Id: no-key"), 401),
        "unknown-url": (_post(b"{}", auth, b"X-Request-Id: unknown-url", path=b"/v1/nothing/here"), 404),
        "unknown-bytes": (
            b"GET /v1/%ff%fe%00 HTTP/1.1\r\nHost: g\r\nConnection: close\r\nX-Request-Id: unknown-bytes\r\n\r\n",
            404,
        ),
        "bad-json": (_post(b"{not json", auth, b"X-Request-Id: bad-json"), 400),
        "too-large": (_post(b"{" + b" " * 5000 + b"}", auth, b"X-Request-Id: too-large"), 413),
    }
    for request_id, (request, expected) in cases.items():
        status, headers, _ = await exchange(gateway.port, request)
        assert status == expected, request_id
        assert headers["x-request-id"] == request_id
    # A chunked body that turns malformed once the handler reads it (100-continue says when).
    reader, writer = await connect(gateway.port)
    writer.write(
        b"POST /v1/responses HTTP/1.1\r\nHost: g\r\nConnection: close\r\nExpect: 100-continue\r\n"
        + auth
        + b"\r\nX-Request-Id: bad-chunks\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    assert await reader.readuntil(b"\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n"
    writer.write(b'5\r\n{"mod\r\nzz\r\n')
    status, headers, answer = parse_response((await read_until_closed(reader, 5))[0])
    writer.close()
    assert status == 400 and error_of(answer)["code"] == "invalid_body"
    cases["bad-chunks"] = (b"", 400)
    # A body that stops coming (408), and clients that leave while the body is read or mid-stream.
    reader, writer = await connect(gateway.port)
    writer.write(_create("slow-body")[:-5])
    await writer.drain()
    assert (await reader.read(12)).startswith(b"HTTP/1.1 408")
    writer.close()
    reader, writer = await connect(gateway.port)
    writer.write(_create("left-in-body")[:-5])
    await writer.drain()
    writer.close()
    reader, writer = await connect(gateway.port)
    writer.write(_create("left-mid-stream", stream=True))
    await writer.drain()
    await reader.readuntil(b"response.output_text.delta")
    writer.close()
    expected_lines = {
        **{k: v for k, (_, v) in cases.items()},
        "slow-body": 408,
        "left-in-body": 499,
        "left-mid-stream": 499,
    }
    for request_id, status in expected_lines.items():
        line = await _log_line(gateway, request_id)
        assert line["status"] == status, (request_id, line)
        assert line["client_disconnected"] is request_id.startswith("left-"), (request_id, line)
    assert "Traceback" not in gateway.stderr_text()
    gateway.scrape()
