"""RedisConversationStore against a real redis-server: round trip, TTL, sharing, size cap."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from modelgate_gateway.state import (
    RedisConversationStore,
    StateStoreError,
    StateTooLargeError,
    StoredResponse,
)
from redis_server import RedisServer

ENTRY = StoredResponse(
    response={"id": "resp_1", "object": "response", "status": "completed", "output": []},
    messages=[{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}],
    input_items=[{"id": "msg_1", "type": "message", "role": "user", "content": []}],
    created_at=1_700_000_000,
)


@pytest.fixture
async def store(redis_server: RedisServer) -> AsyncIterator[RedisConversationStore]:
    store = RedisConversationStore.from_url(redis_server.url)
    yield store
    await store.close()


async def test_put_then_get_round_trips_the_entry(store: RedisConversationStore) -> None:
    assert await store.get("resp_1") is None
    await store.put("resp_1", ENTRY, ttl_seconds=60)
    assert await store.get("resp_1") == ENTRY


async def test_keys_are_namespaced_and_expire(store: RedisConversationStore, redis_server: RedisServer) -> None:
    await store.put("resp_1", ENTRY, ttl_seconds=120)
    raw = aioredis.Redis.from_url(redis_server.url)
    try:
        assert await raw.keys("*") == [b"modelgate:resp:resp_1"]
        assert 0 < await raw.ttl("modelgate:resp:resp_1") <= 120
        await raw.pexpire("modelgate:resp:resp_1", 20)  # shorten the TTL instead of waiting 120 s
    finally:
        await raw.aclose()
    deadline = time.monotonic() + 5
    while await store.get("resp_1") is not None:
        assert time.monotonic() < deadline, "entry did not expire"
        await asyncio.sleep(0.01)  # poll interval
    assert await store.ttl("resp_1") is None


async def test_ttl_is_set_from_the_argument(store: RedisConversationStore) -> None:
    await store.put("resp_1", ENTRY, ttl_seconds=3600)
    left = await store.ttl("resp_1")
    assert left is not None and 3590 <= left <= 3600
    with pytest.raises(ValueError):
        await store.put("resp_1", ENTRY, ttl_seconds=0)


async def test_delete_reports_whether_the_entry_existed(store: RedisConversationStore) -> None:
    await store.put("resp_1", ENTRY, ttl_seconds=60)
    assert await store.delete("resp_1") is True
    assert await store.get("resp_1") is None
    assert await store.delete("resp_1") is False


async def test_state_written_by_one_gateway_is_read_by_another(redis_server: RedisServer) -> None:
    first = RedisConversationStore.from_url(redis_server.url)
    second = RedisConversationStore.from_url(redis_server.url)
    try:
        await first.put("resp_shared", ENTRY, ttl_seconds=60)
        assert await second.get("resp_shared") == ENTRY
        assert await second.delete("resp_shared") is True
        assert await first.get("resp_shared") is None
    finally:
        await first.close()
        await second.close()


async def test_entries_above_the_cap_are_refused_and_not_stored(redis_server: RedisServer) -> None:
    store = RedisConversationStore.from_url(redis_server.url, max_bytes=1024)
    big = StoredResponse(response={"id": "resp_big"}, messages=[{"role": "user", "content": "x" * 2048}])
    try:
        with pytest.raises(StateTooLargeError) as caught:
            await store.put("resp_big", big, ttl_seconds=60)
        assert caught.value.limit == 1024 and caught.value.size > 1024
        assert await store.get("resp_big") is None
        await store.put("resp_small", ENTRY, ttl_seconds=60)
        assert await store.get("resp_small") == ENTRY
    finally:
        await store.close()


async def test_corrupt_entry_raises_store_error(store: RedisConversationStore, redis_server: RedisServer) -> None:
    raw = aioredis.Redis.from_url(redis_server.url)
    try:
        await raw.set("modelgate:resp:resp_bad", b"not json")
    finally:
        await raw.aclose()
    with pytest.raises(StateStoreError):
        await store.get("resp_bad")


async def test_unreachable_redis_fails_fast_with_store_error(redis_server: RedisServer) -> None:
    # The server's port, after the server is gone: connection refused, not a hang.
    redis_server.process.terminate()
    redis_server.process.wait(timeout=5)
    store = RedisConversationStore.from_url(redis_server.url, timeout_seconds=0.5)
    try:
        with pytest.raises(StateStoreError):
            await store.get("resp_1")
        with pytest.raises(StateStoreError):
            await store.put("resp_1", ENTRY, ttl_seconds=60)
    finally:
        await store.close()
