"""The injector never blocks the operator's start: while certificates cannot be had (API server
unreachable) it retries with a bounded backoff, and serves as soon as one arrives."""

from __future__ import annotations

import asyncio
import datetime
import ssl

import pytest

from modelgate_operator.errors import KubeApiError
from modelgate_operator.injection.certs import TLS_CERT, TLS_KEY, Lifetimes, ca_bundle, plan
from modelgate_operator.injection.certstore import Serving
from modelgate_operator.injection.runner import Injector
from modelgate_operator.injection.server import WebhookServer
from modelgate_operator.injection.template import SidecarTemplate

DATA = plan({}, ("127.0.0.1",), datetime.datetime.now(datetime.UTC), Lifetimes())


class Flaky:
    """Fails ``failures`` times (as an unreachable API server does), then serves the certificate."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0

    def current(self) -> Serving:
        self.calls += 1
        if self.calls <= self.failures:
            raise KubeApiError("read Secret modelgate/modelgate-webhook-tls: API server unreachable")
        return Serving(DATA[TLS_CERT], DATA[TLS_KEY])


async def test_the_server_starts_once_the_certificate_can_be_had(caplog: pytest.LogCaptureFixture) -> None:
    source = Flaky(failures=3)
    injector = Injector(
        WebhookServer(SidecarTemplate(image="x"), "127.0.0.1", 0), source, check_seconds=3600, retry=(0.01, 0.05)
    )
    injector.start()
    try:
        await asyncio.wait_for(injector.serving.wait(), 10)
        assert source.calls == 4
        context = ssl.create_default_context(cadata=ca_bundle(DATA).decode())
        _, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", injector.server.port, ssl=context), 10)
        writer.close()
        await writer.wait_closed()
    finally:
        await injector.stop()
    retries = [r for r in caplog.records if "retrying in" in r.getMessage()]
    assert len(retries) == 3 and "API server unreachable" in retries[0].getMessage()
