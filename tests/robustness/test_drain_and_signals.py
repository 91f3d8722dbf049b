"""SIGTERM drains within one bound and cuts what is left truthfully; SIGHUP reloads the config.

Real gateway processes: the mock provider streams slowly, a fake upstream in this process hangs
for a request that never gets an answer. Timings are asserted with bounds (the grace period, the
documented overrun after it), never waited for with sleeps.
"""

from __future__ import annotations

import asyncio
import re
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest
from openai import APIStatusError, AsyncOpenAI

from fake_responses_upstream import Behaviour, FakeResponsesUpstream
from gateway_process import GatewayProcess
from mock_config import API_KEY, mock_config
from modelgate_gateway.server.draining import SHUTDOWN_OVERRUN_SECONDS
from raw_client import connect, error_of, parse_response, read_until_closed
from raw_http_server import eventually

GRACE = 2.0
SLACK = 1.0  # scheduling delay allowed on a loaded machine


def _create(model: str, request_id: str, stream: bool) -> bytes:
    body = orjson.dumps({"model": model, "input": "hi", "stream": stream})
    return (f"POST /v1/responses HTTP/1.1\r\nHost: g\r\nAuthorization: Bearer {API_KEY}\r\n"
            f"X-Request-Id: {request_id}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
            ).encode() + body


async def _answer_and_time(port: int, request: bytes, started: asyncio.Event) -> tuple[bytes, float]:
    """Send ``request``; return the whole answer and when it ended (the connection closing)."""
    reader, writer = await connect(port)
    writer.write(request)
    await writer.drain()
    data = await reader.readuntil(b"response.output_text.delta") if b'"stream":true' in request else b""
    started.set()
    while not data.endswith(b"\r\n0\r\n\r\n") and not (b"Content-Length" in data and data.endswith(b"}")):
        chunk = await reader.read(65536)
        if not chunk:
            break
        data += chunk
    ended = time.monotonic()
    writer.close()
    return data, ended


@pytest.fixture
async def hanging_upstream() -> AsyncIterator[FakeResponsesUpstream]:
    upstream = FakeResponsesUpstream("hanging")
    await upstream.start()
    upstream.script = [Behaviour(hang=True)] * 4
    yield upstream
    await upstream.close()


async def test_sigterm_cuts_what_outlives_the_grace_period_within_the_bound(
        tmp_path: Path, hanging_upstream: FakeResponsesUpstream) -> None:
    # Raw sockets measure when the answers end: an SDK client in this loop would skew it (it
    # spends about a second building its model of the first response.failed event).
    config = mock_config(tmp_path / "config.yaml", words=100, token_delay=0.1,
                         upstreams={"hanging": hanging_upstream.base_url})
    gateway = GatewayProcess(config, "--shutdown-grace-seconds", str(GRACE))
    await asyncio.to_thread(gateway.start)
    try:
        requests = [_create("gpt-4o", f"stream-{i}", True) for i in range(3)] + [_create("hanging", "plain", False)]
        started = [asyncio.Event() for _ in requests]
        answers = [asyncio.create_task(_answer_and_time(gateway.port, request, event))
                   for request, event in zip(requests, started, strict=True)]
        for event in started:
            await event.wait()
        await eventually(lambda: len(hanging_upstream.creates) == 1, timeout=10)  # the plain request waits upstream
        cut_at = time.monotonic()
        gateway.terminate()
        results = await asyncio.gather(*answers)
        for data, ended in results[:3]:
            status, _, body = parse_response(data)
            assert status == 200
            last = body.strip().split(b"\n\n")[-1]
            assert last.startswith(b"event: response.failed\ndata: ")
            assert orjson.loads(last.split(b"data: ", 1)[1])["response"]["error"]["code"] == "gateway_shutting_down"
            assert GRACE - 0.1 <= ended - cut_at <= GRACE + SLACK
        status, headers, body = parse_response(results[3][0])
        assert (status, headers["connection"], error_of(body)["code"]) == (503, "close", "gateway_shutting_down")
        assert GRACE - 0.1 <= results[3][1] - cut_at <= GRACE + SLACK
        assert await asyncio.to_thread(gateway.wait, 30) == 0
        assert time.monotonic() - cut_at <= GRACE + SHUTDOWN_OVERRUN_SECONDS
        lines = {line["request_id"]: line for line in gateway.log_lines()}
        for request_id in ("stream-0", "stream-1", "stream-2", "plain"):
            line = lines[request_id]
            assert (line["status"], line["error_type"], line["client_disconnected"]) == (503, "gateway_shutdown", False)
        assert "cutting 4 requests" in gateway.stderr_text()
    finally:
        gateway.stop()


async def test_sdk_clients_see_the_cut_as_response_failed_and_503(
        tmp_path: Path, hanging_upstream: FakeResponsesUpstream) -> None:
    config = mock_config(tmp_path / "config.yaml", words=100, token_delay=0.1,
                         upstreams={"hanging": hanging_upstream.base_url})
    gateway = GatewayProcess(config, "--shutdown-grace-seconds", "0.5")
    await asyncio.to_thread(gateway.start)
    try:
        async with AsyncOpenAI(base_url=gateway.base_url, api_key=API_KEY, max_retries=0) as client:
            stream = await client.responses.create(model="gpt-4o", input="hi", stream=True)
            plain = asyncio.create_task(client.responses.create(model="hanging", input="hi"))
            await eventually(lambda: len(hanging_upstream.creates) == 1, timeout=10)
            gateway.terminate()
            events = [event async for event in stream]
            assert events[-1].type == "response.failed"
            assert events[-1].response.error is not None
            assert events[-1].response.error.code == "gateway_shutting_down"
            with pytest.raises(APIStatusError) as caught:
                await plain
            assert caught.value.status_code == 503 and caught.value.code == "gateway_shutting_down"
        assert await asyncio.to_thread(gateway.wait, 30) == 0
    finally:
        gateway.stop()


async def test_sigterm_closes_idle_connections_at_once_and_lets_uploads_and_streams_finish(tmp_path: Path) -> None:
    grace = 5.0
    config = mock_config(tmp_path / "config.yaml", words=15, token_delay=0.1)  # a 1.5 s stream
    gateway = GatewayProcess(config, "--shutdown-grace-seconds", str(grace))
    await asyncio.to_thread(gateway.start)
    try:
        idle_reader, idle_writer = await connect(gateway.port)
        idle_writer.write(b"GET /healthz HTTP/1.1\r\nHost: g\r\n\r\n")
        await idle_reader.readuntil(b'{"status": "ok"}')
        upload = _create("gpt-4o", "upload", False)
        head, body = upload.split(b"\r\n\r\n", 1)
        upload_reader, upload_writer = await connect(gateway.port)
        upload_writer.write(head + b"\r\n\r\n" + body[:10])  # the rest comes after SIGTERM
        await upload_writer.drain()
        streaming = asyncio.Event()
        stream = asyncio.create_task(_answer_and_time(gateway.port, _create("gpt-4o", "stream", True), streaming))
        await streaming.wait()
        terminated = time.monotonic()
        gateway.terminate()
        data, closed = await read_until_closed(idle_reader, 5)
        assert data == b"" and closed < 1.0  # the idle connection closed at once, not after the drain
        await eventually(lambda: "draining" in gateway.stderr_text(), timeout=5)
        with pytest.raises(ConnectionRefusedError):
            await connect(gateway.port)
        upload_writer.write(body[10:])
        status, _, answer = parse_response((await read_until_closed(upload_reader, 5))[0])
        assert status == 200 and orjson.loads(answer)["status"] == "completed"
        data, _ = await stream
        assert b"event: response.completed" in data
        assert await asyncio.to_thread(gateway.wait, 30) == 0
        assert time.monotonic() - terminated < grace  # nothing left: no wait for the grace period
        for writer in (idle_writer, upload_writer):
            writer.close()
    finally:
        gateway.stop()


async def test_a_quiet_gateway_exits_at_once(tmp_path: Path) -> None:
    gateway = GatewayProcess(mock_config(tmp_path / "config.yaml"), "--shutdown-grace-seconds", "30")
    await asyncio.to_thread(gateway.start)
    try:
        started = time.monotonic()
        gateway.terminate()
        assert await asyncio.to_thread(gateway.wait, 30) == 0
        assert time.monotonic() - started < SHUTDOWN_OVERRUN_SECONDS
    finally:
        gateway.stop()


async def test_sighup_reloads_the_config_at_once_and_keeps_serving(tmp_path: Path) -> None:
    config = mock_config(tmp_path / "config.yaml", words=30, token_delay=0.05)
    gateway = GatewayProcess(config, "--reload-interval-seconds", "60")
    await asyncio.to_thread(gateway.start)
    try:
        async with AsyncOpenAI(base_url=gateway.base_url, api_key=API_KEY, max_retries=0) as client:
            stream = await client.responses.create(model="gpt-4o", input="hi", stream=True)
            mock_config(config, model="gpt-4o-next")  # the poll would see it only in a minute
            assert gateway.proc is not None
            gateway.proc.send_signal(signal.SIGHUP)

            async def models() -> list[str]:
                return [m.id async for m in client.models.list()]

            deadline = time.monotonic() + 5
            while (await models()) != ["gpt-4o-next"]:
                assert time.monotonic() < deadline, "SIGHUP did not reload the config"
            events = [event async for event in stream]  # the stream started before goes on
            assert events[-1].type == "response.completed"
            assert gateway.proc.poll() is None
        assert "SIGHUP" in gateway.stderr_text()
        gateway.terminate()
        assert await asyncio.to_thread(gateway.wait, 30) == 0
    finally:
        gateway.stop()


async def test_sighup_reaches_every_worker(tmp_path: Path) -> None:
    config = mock_config(tmp_path / "config.yaml")
    gateway = GatewayProcess(config, "--workers", "2", "--reload-interval-seconds", "60", metrics_ports=2)
    await asyncio.to_thread(gateway.start, 30)
    try:
        ports = [gateway.metrics_port, gateway.metrics_port + 1]
        for port in ports:
            await asyncio.to_thread(gateway.wait_for_port, port)

        def checksums() -> list[str]:
            return [re.search(r'modelgate_config_info\{[^}]*checksum="([^"]+)"', gateway.scrape(p))[1]  # type: ignore[index]
                    for p in ports]

        before = checksums()
        assert before[0] == before[1]
        mock_config(config, model="gpt-4o-next")
        assert gateway.proc is not None
        gateway.proc.send_signal(signal.SIGHUP)
        await eventually(lambda: all(c != before[0] for c in checksums()), timeout=5)
        assert gateway.proc.poll() is None
        gateway.terminate()
        assert await asyncio.to_thread(gateway.wait, 30) == 0
    finally:
        gateway.stop()
