"""The background ledger's claim / record / release and owner leases, in Redis and in memory alike."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from modelgate_gateway.state.ledger import BackgroundLedger, MemoryLedger, RedisLedger
from redis_server import RedisServer

LEASE = 0.3  # seconds; long enough for a call, short enough to lapse within the test


@pytest.fixture(params=["redis", "memory"])
async def ledger(request: pytest.FixtureRequest) -> AsyncIterator[BackgroundLedger]:
    if request.param == "memory":
        yield MemoryLedger()
        return
    server: RedisServer = request.getfixturevalue("redis_server")
    client = aioredis.Redis.from_url(server.url, socket_timeout=2)
    yield RedisLedger(client)
    await client.aclose()


async def _add(ledger: BackgroundLedger, key: str = "a/resp_1", owner: str = "gw1") -> None:
    await ledger.add(key, b'{"entry": 1}', time.time() + 60, owner, LEASE)


async def test_only_one_of_racing_claims_records(ledger: BackgroundLedger) -> None:
    await _add(ledger)
    won = await asyncio.gather(*(ledger.claim("a/resp_1", f"t{i}", LEASE) for i in range(8)))
    assert won.count(True) == 1
    winner = f"t{won.index(True)}"
    loser = "t0" if winner != "t0" else "t1"
    assert await ledger.record("a/resp_1", loser) is None
    assert await ledger.record("a/resp_1", winner) == b'{"entry": 1}'
    # counted: no later claim, no re-add, no second record
    assert not await ledger.claim("a/resp_1", "late", LEASE)
    await _add(ledger)
    assert not await ledger.claim("a/resp_1", "later", LEASE)


async def test_a_released_claim_can_be_taken_again(ledger: BackgroundLedger) -> None:
    await _add(ledger)
    assert await ledger.claim("a/resp_1", "t1", LEASE)
    await ledger.release("a/resp_1", "someone-else")  # not theirs: nothing happens
    assert not await ledger.claim("a/resp_1", "t2", LEASE)
    await ledger.release("a/resp_1", "t1")
    assert await ledger.claim("a/resp_1", "t2", LEASE)
    assert await ledger.record("a/resp_1", "t2") is not None


async def test_an_unknown_response_cannot_be_claimed(ledger: BackgroundLedger) -> None:
    assert not await ledger.claim("a/never-created", "t1", LEASE)


async def test_a_lapsed_owner_is_taken_over_and_cannot_renew(ledger: BackgroundLedger) -> None:
    await _add(ledger, owner="gw1")
    assert await ledger.renew("a/resp_1", "gw1", LEASE)
    assert not await ledger.renew("a/resp_1", "gw2", LEASE)  # held by gw1
    assert await ledger.adopt("gw2", LEASE, 10) == []
    deadline = time.monotonic() + 5
    while not (adopted := await ledger.adopt("gw2", LEASE, 10)):  # gw1 stopped renewing: its lease lapses
        assert time.monotonic() < deadline, "the lease never lapsed"
        await asyncio.sleep(0.02)
    assert adopted == [("a/resp_1", b'{"entry": 1}')]
    assert not await ledger.renew("a/resp_1", "gw1", LEASE)  # gw1 is back: gw2 follows it now
    assert await ledger.renew("a/resp_1", "gw2", LEASE)


async def test_disowned_entries_are_adopted_at_once_and_counted_ones_never(ledger: BackgroundLedger) -> None:
    await _add(ledger, "a/resp_1", owner="gw1")
    await _add(ledger, "a/resp_2", owner="gw1")
    await ledger.disown("a/resp_1", "gw1")
    assert await ledger.claim("a/resp_2", "t", LEASE) and await ledger.record("a/resp_2", "t")
    assert await ledger.adopt("gw2", LEASE, 10) == [("a/resp_1", b'{"entry": 1}')]
    assert not await ledger.renew("a/resp_2", "gw1", LEASE)  # counted: nothing to follow


async def test_adoption_takes_at_most_the_room_left(ledger: BackgroundLedger) -> None:
    for i in range(5):
        await _add(ledger, f"a/resp_{i}", owner="gw1")
        await ledger.disown(f"a/resp_{i}", "gw1")
    assert len(await ledger.adopt("gw2", LEASE, 2)) == 2
    assert len(await ledger.adopt("gw3", LEASE, 10)) == 3
