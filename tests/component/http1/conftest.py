"""Fixtures of the HTTP/1.1 upstream client's tests: every test runs on asyncio's loop and on uvloop.

The gateway serves on uvloop, whose transports differ from asyncio's in details a protocol-level
client depends on (when ``connection_made`` runs, transport classes), so both are exercised.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Callable, Iterator, Mapping

import pytest
import trustme
import uvloop

from modelgate_gateway.http1 import Http1Client


def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item,
                                  ) -> Mapping[str, Callable[[], asyncio.AbstractEventLoop]]:
    return {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}


@pytest.fixture
async def client() -> AsyncIterator[Http1Client]:
    c = Http1Client()
    yield c
    await c.close()


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def server_tls(ca: trustme.CA) -> Iterator[ssl.SSLContext]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    yield context
