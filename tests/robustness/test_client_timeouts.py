"""Hostile clients cannot hold connections: header, body and keep-alive idle timeouts, and a cap.

A real gateway process with short timeouts (header 0.5 s, body 0.8 s, idle 1 s); raw sockets play
slowloris, idle floods and slow bodies; the official SDK plays the legitimate client, whose
streams must outlive every one of these timeouts.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from openai import APIStatusError, AsyncOpenAI

from gateway_process import GatewayProcess
from mock_config import API_KEY, mock_config
from raw_client import connect, drip, error_of, metric, parse_response, read_until_closed
from raw_http_server import eventually

HEADER, BODY, IDLE = 0.5, 0.8, 1.0
SLACK = 2.0  # scheduling delay allowed on a loaded 2-core machine; far below what was seen before (~1 h)
TIMEOUT_FLAGS = ("--client-header-timeout-seconds", str(HEADER), "--client-body-timeout-seconds", str(BODY),
                 "--client-idle-timeout-seconds", str(IDLE))
HEADERS_START = b"POST /v1/responses HTTP/1.1\r\nHost: gateway\r\n"


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    # 30 words 0.1 s apart: a stream of ~3 s, longer than every client timeout together.
    config = mock_config(tmp_path_factory.mktemp("timeouts") / "config.yaml", words=30, token_delay=0.1)
    process = GatewayProcess(config, *TIMEOUT_FLAGS)
    process.start()
    yield process
    process.stop()


def _client(gateway: GatewayProcess) -> AsyncOpenAI:
    return AsyncOpenAI(base_url=gateway.base_url, api_key=API_KEY, max_retries=0)


def _closed(gateway: GatewayProcess, reason: str) -> float:
    return metric(gateway.scrape(), "modelgate_client_connections_closed_total", reason=reason) or 0.0


async def test_slowloris_header_senders_get_408_at_the_header_timeout(gateway: GatewayProcess) -> None:
    before = _closed(gateway, "header_timeout")

    async def slowloris() -> tuple[bytes, float]:
        reader, writer = await connect(gateway.port)
        sender = asyncio.create_task(drip(writer, HEADERS_START + b"X-Padding: " + b"a" * 1000, 0.05))
        try:
            return await read_until_closed(reader, HEADER + SLACK + 2)
        finally:
            sender.cancel()
            writer.close()

    attackers = [asyncio.create_task(slowloris()) for _ in range(50)]
    async with _client(gateway) as client:  # served meanwhile
        assert (await client.responses.create(model="gpt-4o", input="hi")).output_text.startswith("w0 w1")
    for data, elapsed in await asyncio.gather(*attackers):
        assert HEADER - 0.05 <= elapsed <= HEADER + SLACK
        status, headers, body = parse_response(data)
        assert status == 408 and headers["connection"] == "close"
        assert error_of(body)["code"] == "request_timeout"
    assert _closed(gateway, "header_timeout") - before >= 50


async def test_connections_that_send_nothing_are_closed_at_the_header_timeout(gateway: GatewayProcess) -> None:
    opened = [await connect(gateway.port) for _ in range(30)]
    results = await asyncio.gather(*(read_until_closed(reader, HEADER + SLACK + 2) for reader, _ in opened))
    for data, elapsed in results:
        assert data == b""  # nothing was asked: nothing is answered (a racing request would misread a 408)
        assert elapsed <= HEADER + SLACK
    for _, writer in opened:
        writer.close()


async def test_idle_keep_alive_connections_close_after_the_idle_timeout(gateway: GatewayProcess) -> None:
    reader, writer = await connect(gateway.port)
    for _ in range(2):  # reused while within the idle timeout
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: gateway\r\n\r\n")
        await writer.drain()
        assert (await reader.readuntil(b'{"status": "ok"}')).startswith(b"HTTP/1.1 200 OK")
    data, elapsed = await read_until_closed(reader, IDLE + SLACK + 2)
    writer.close()
    assert data == b""
    assert IDLE - 0.05 <= elapsed <= IDLE + SLACK


async def test_a_slow_body_gets_408_at_the_body_timeout_and_one_log_line(gateway: GatewayProcess) -> None:
    before = _closed(gateway, "body_timeout")
    reader, writer = await connect(gateway.port)
    writer.write(HEADERS_START + f"Authorization: Bearer {API_KEY}\r\nX-Request-Id: slow-body-1\r\n"
                 "Content-Type: application/json\r\nContent-Length: 2000\r\n\r\n".encode())
    sender = asyncio.create_task(drip(writer, b'{"model": "gpt-4o", "input": "' + b"x" * 2000, 0.02))
    try:
        data, elapsed = await read_until_closed(reader, BODY + SLACK + 2)
    finally:
        sender.cancel()
        writer.close()
    assert BODY - 0.05 <= elapsed <= BODY + SLACK
    status, headers, body = parse_response(data)
    assert status == 408 and headers["x-request-id"] == "slow-body-1"
    assert error_of(body)["code"] == "request_timeout"
    assert _closed(gateway, "body_timeout") - before == 1
    await eventually(lambda: any(line["request_id"] == "slow-body-1" for line in gateway.log_lines()), timeout=5)
    [line] = [line for line in gateway.log_lines() if line["request_id"] == "slow-body-1"]
    assert line["status"] == 408 and line["error_code"] == "request_timeout"


async def test_streams_outlive_every_client_timeout(gateway: GatewayProcess) -> None:
    async with _client(gateway) as client:
        started = time.monotonic()
        stream = await client.responses.create(model="gpt-4o", input="x" * 200_000, stream=True)
        events = [event async for event in stream]
        assert time.monotonic() - started > HEADER + BODY + IDLE  # longer than every timeout together
        assert events[-1].type == "response.completed"
        assert events[-1].response.output_text == " ".join(f"w{i}" for i in range(30))


async def test_every_connection_busy_means_503_at_once_for_the_next(tmp_path: Path) -> None:
    config = mock_config(tmp_path / "config.yaml", words=20, token_delay=0.1)
    gateway = GatewayProcess(config, *TIMEOUT_FLAGS, "--max-client-connections", "3")
    await asyncio.to_thread(gateway.start)
    try:
        async with _client(gateway) as client:
            streams = [await client.responses.create(model="gpt-4o", input="hi", stream=True) for _ in range(2)]
            # /readyz polling closed its connections; with 2 streams and this one, 3 are busy.
            third = await client.responses.create(model="gpt-4o", input="hi", stream=True)
            reader, writer = await connect(gateway.port)
            data, elapsed = await read_until_closed(reader, 5)
            writer.close()
            assert elapsed < 1.0  # refused at the accept, not after a timeout
            status, headers, body = parse_response(data)
            assert status == 503 and headers["retry-after"] == "1"
            assert error_of(body)["code"] == "too_many_connections"
            async with _client(gateway) as other:  # what an SDK client sees (it would retry)
                with pytest.raises(APIStatusError) as caught:
                    await other.models.list()
            assert caught.value.status_code == 503
            for stream in [*streams, third]:
                assert [event async for event in stream][-1].type == "response.completed"
        assert metric(gateway.scrape(), "modelgate_client_connections_closed_total", reason="over_capacity") == 2
    finally:
        gateway.stop()


async def test_idle_floods_cannot_lock_clients_out_under_a_low_descriptor_limit(tmp_path: Path) -> None:
    config = mock_config(tmp_path / "config.yaml")
    # 256 descriptors: the gateway serves at most 128 client connections and keeps the rest.
    gateway = GatewayProcess(config, "--client-header-timeout-seconds", "60", "--client-idle-timeout-seconds", "60",
                             open_files=256)
    await asyncio.to_thread(gateway.start)
    opened: list[asyncio.StreamWriter] = []
    try:
        for _ in range(300):  # idle connections, then slowloris ones: each evicts the longest idle
            _, writer = await connect(gateway.port)
            opened.append(writer)
        for _ in range(100):
            _, writer = await connect(gateway.port)
            writer.write(HEADERS_START)
            opened.append(writer)
        async with AsyncOpenAI(base_url=gateway.base_url, api_key=API_KEY, max_retries=0) as client:
            for _ in range(10):
                assert (await client.responses.create(model="gpt-4o", input="hi")).output_text
        text = gateway.scrape()
        assert (metric(text, "modelgate_client_connections") or 0) <= 128
        assert (metric(text, "modelgate_client_connections_closed_total", reason="idle_evicted") or 0) >= 272
        assert gateway.open_descriptors() < 200
        assert "serving at most 128 client connections" in gateway.stderr_text()
    finally:
        for writer in opened:
            writer.close()
        gateway.stop()
