"""A dead or silent Redis costs each call about its timeout: what "never a hang" rests on.

Against a Redis that is gone (connection refused) or that accepts and never answers (a stopped
process, a black hole), every client the gateway and the operator make fails a call within its
timeout: no retries with backoff (redis-py's own default for clients built without ``from_url``
is ten of them), no wait without a bound. Guards the clients' construction against such defaults.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from modelgate_gateway.config import BudgetWindow, counters
from modelgate_gateway.governance.ledger import Claim, Ledger, LedgerUnavailable
from modelgate_gateway.governance.policy import Limits, Subject
from modelgate_gateway.state.redis_store import RedisConversationStore
from modelgate_gateway.state.store import StateStoreError

TIMEOUT = 0.2
BOUND = 2 * TIMEOUT + 0.3  # the handshake or the command times out once; slack for scheduling


@pytest.fixture
async def silent_redis() -> AsyncIterator[str]:
    """A server that accepts connections and reads, but never answers."""
    held: list[asyncio.StreamWriter] = []

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)
        while await reader.read(65536):
            pass

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


@pytest.fixture
def refused_redis() -> str:
    """A port nothing listens on (taken and released: connections are refused at once)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"redis://127.0.0.1:{port}/0"


def _claim() -> Claim:
    now = int(time.time() * 1000)
    subject = Subject("key", "k", Limits(requests_per_minute=10, window=BudgetWindow.DAILY))
    return Claim("r", (subject,), counters.minute(now).id, (counters.budget_window(BudgetWindow.DAILY, now),), 1, 1)


@pytest.mark.parametrize("which", ["silent", "refused"])
async def test_the_governance_ledger_fails_within_its_timeout(
    which: str, silent_redis: str, refused_redis: str
) -> None:
    ledger = Ledger.from_url(silent_redis if which == "silent" else refused_redis, None, TIMEOUT)
    now = int(time.time() * 1000)
    started = time.monotonic()
    try:
        with pytest.raises(LedgerUnavailable):
            await asyncio.wait_for(ledger.reserve(_claim(), now, now + 60_000, counters.minute(now)), 30)
        assert time.monotonic() - started < BOUND
    finally:
        await ledger.close()


@pytest.mark.parametrize("which", ["silent", "refused"])
async def test_the_state_store_fails_within_its_timeout(which: str, silent_redis: str, refused_redis: str) -> None:
    store = RedisConversationStore.from_url(
        silent_redis if which == "silent" else refused_redis, timeout_seconds=TIMEOUT
    )
    started = time.monotonic()
    try:
        with pytest.raises(StateStoreError):
            await asyncio.wait_for(store.get("resp_x"), 30)
        assert time.monotonic() - started < BOUND
    finally:
        await store.close()


@pytest.mark.parametrize("which", ["silent", "refused"])
async def test_the_operators_spend_reader_fails_within_its_timeout(
    which: str, silent_redis: str, refused_redis: str
) -> None:
    from modelgate_operator.keys.resources import parse_key
    from modelgate_operator.keys.spend import SpendReader

    key = parse_key({"metadata": {"name": "k", "namespace": "ns"}, "spec": {"secretRef": {"name": "s"}}}, "gw")
    reader = SpendReader(silent_redis if which == "silent" else refused_redis, timeout_seconds=TIMEOUT)
    started = time.monotonic()
    try:
        spend = await asyncio.wait_for(asyncio.to_thread(reader.read, key, datetime.now(UTC)), 30)
        assert time.monotonic() - started < BOUND
        assert spend.spent_usd is None  # unknown, not zero: the status says Redis could not be read
    finally:
        reader.close()
