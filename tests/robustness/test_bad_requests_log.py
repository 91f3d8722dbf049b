"""Malformed requests cost one short, rate-limited log line at most, and never reveal a credential.

aiohttp rejects bare-LF line endings, obsolete line folding and bad header bytes, and used to log
an ERROR traceback quoting the raw request (``Authorization`` included) and echo it back.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Iterator

import pytest

from gateway_process import GatewayProcess
from mock_config import mock_config
from raw_client import error_of, exchange, metric

SECRET = "sk-live-do-not-log-0123456789abcdef"
MALFORMED = {
    "bare LF": f"POST /v1/responses HTTP/1.1\nHost: g\nAuthorization: Bearer {SECRET}\nContent-Length: 2\n\n{{}}",
    "obs-fold": f"GET /v1/models HTTP/1.1\r\nHost: g\r\nX-Folded: a\r\n b\r\nAuthorization: Bearer {SECRET}\r\n\r\n",
    "header bytes": f"GET /v1/models HTTP/1.1\r\nHost: g\r\nAuthorization: Bearer {SECRET}\r\nX-Bad\x01: v\r\n\r\n",
    "space before colon": f"GET /v1/models HTTP/1.1\r\nHost: g\r\nAuthorization : Bearer {SECRET}\r\n\r\n",
    "bad chunk size": (f"POST /v1/responses HTTP/1.1\r\nHost: g\r\nAuthorization: Bearer {SECRET}\r\n"
                       f"Transfer-Encoding: chunked\r\n\r\nzz{SECRET}\r\n"),
    "smuggling": (f"POST /v1/responses HTTP/1.1\r\nHost: g\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n"
                  f"Authorization: Bearer {SECRET}\r\n\r\n0\r\n\r\n"),
}


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    process = GatewayProcess(mock_config(tmp_path_factory.mktemp("bad") / "config.yaml"))
    process.start()
    process.started_at = time.monotonic()  # type: ignore[attr-defined]
    yield process
    process.stop()


@pytest.mark.parametrize("kind", list(MALFORMED))
async def test_a_malformed_request_gets_a_400_that_quotes_nothing(gateway: GatewayProcess, kind: str) -> None:
    status, headers, body = await exchange(gateway.port, MALFORMED[kind].encode())
    assert status == 400
    assert headers["content-type"] == "application/json"
    error = error_of(body)
    assert error["code"] == "bad_request" and str(error["message"]).startswith("Malformed HTTP request")
    assert SECRET.encode() not in body and b"Bearer" not in body


async def test_a_flood_of_malformed_requests_costs_one_line_and_no_secret(gateway: GatewayProcess) -> None:
    before = metric(gateway.scrape(), "modelgate_client_connections_closed_total", reason="malformed") or 0
    requests = [request.encode() for request in MALFORMED.values()] * 50
    for batch in range(0, len(requests), 25):
        await asyncio.gather(*(exchange(gateway.port, request) for request in requests[batch:batch + 25]))
    after = metric(gateway.scrape(), "modelgate_client_connections_closed_total", reason="malformed")
    assert after == before + len(requests)
    stderr = gateway.stderr_text()
    assert SECRET not in stderr and "Bearer" not in stderr
    assert "Traceback" not in stderr and "ERROR" not in stderr
    lines = [line for line in stderr.splitlines() if "malformed" in line]
    windows = math.ceil((time.monotonic() - gateway.started_at) / 10)  # type: ignore[attr-defined]
    assert 1 <= len(lines) <= 1 + windows, lines  # one line per 10 s at most, for 300+ requests
    assert all(len(line) < 200 for line in lines)
    assert gateway.log_lines() == []  # the request log is for requests that were understood
