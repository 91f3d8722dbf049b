"""Conversations (the Conversations API) kept by the gateway for upstreams that keep none.

A conversation is its object (``id``, ``created_at``, ``metadata``) and an ordered list of items.
Chat-completions deployments keep them in the Redis of the response store, shared by all replicas
(:class:`RedisConversations`): the object under ``modelgate:conv:<id>`` and the items as a Redis
list under ``modelgate:conv:<id>:items``, so appending a turn is one atomic ``RPUSH`` (two
responses of one conversation finishing at once both land) and both keys' TTL is renewed on every
write. The mock provider keeps them in process (:class:`MemoryConversations`). Both are bounded:
at most :data:`MAX_ITEMS` items per conversation, oldest dropped first.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Protocol, cast

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from .store import StateStoreError

MAX_ITEMS = 10_000
MAX_ITEM_BYTES = 1024 * 1024
_KEY = "modelgate:conv:"
_MAX_MEMORY_CONVERSATIONS = 1000

JsonDict = dict[str, Any]


class Conversations(Protocol):
    """Methods raise :class:`StateStoreError` when the store fails."""

    async def create(self, conversation: JsonDict, items: list[JsonDict], ttl_seconds: int) -> None: ...

    async def get(self, conversation_id: str) -> JsonDict | None: ...

    async def update(self, conversation: JsonDict, ttl_seconds: int) -> None: ...

    async def items(self, conversation_id: str) -> list[JsonDict]: ...

    async def append(self, conversation_id: str, items: list[JsonDict], ttl_seconds: int) -> None: ...

    async def delete(self, conversation_id: str) -> bool: ...

    async def delete_item(self, conversation_id: str, item_id: str) -> bool: ...


class MemoryConversations:
    """In-process conversations (the mock provider): the oldest conversation goes beyond 1000."""

    def __init__(self) -> None:
        self._data: OrderedDict[str, tuple[JsonDict, list[JsonDict]]] = OrderedDict()

    async def create(self, conversation: JsonDict, items: list[JsonDict], ttl_seconds: int) -> None:
        self._data[conversation["id"]] = (conversation, list(items[-MAX_ITEMS:]))
        while len(self._data) > _MAX_MEMORY_CONVERSATIONS:
            self._data.popitem(last=False)

    async def get(self, conversation_id: str) -> JsonDict | None:
        found = self._data.get(conversation_id)
        return None if found is None else found[0]

    async def update(self, conversation: JsonDict, ttl_seconds: int) -> None:
        found = self._data.get(conversation["id"])
        if found is not None:
            self._data[conversation["id"]] = (conversation, found[1])

    async def items(self, conversation_id: str) -> list[JsonDict]:
        found = self._data.get(conversation_id)
        return [] if found is None else list(found[1])

    async def append(self, conversation_id: str, items: list[JsonDict], ttl_seconds: int) -> None:
        found = self._data.get(conversation_id)
        if found is not None:
            found[1].extend(items)
            del found[1][:-MAX_ITEMS]

    async def delete(self, conversation_id: str) -> bool:
        return self._data.pop(conversation_id, None) is not None

    async def delete_item(self, conversation_id: str, item_id: str) -> bool:
        found = self._data.get(conversation_id)
        if found is None:
            return False
        kept = [item for item in found[1] if item.get("id") != item_id]
        removed = len(kept) != len(found[1])
        found[1][:] = kept
        return removed


class RedisConversations:
    """Conversations in Redis, next to the stored responses of chat-completions deployments."""

    def __init__(self, client: aioredis.Redis) -> None:
        self._client = client

    async def create(self, conversation: JsonDict, items: list[JsonDict], ttl_seconds: int) -> None:
        key = _KEY + conversation["id"]
        try:
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.set(key, orjson.dumps(conversation), ex=ttl_seconds)
                if items:
                    pipe.rpush(key + ":items", *(_encoded(item) for item in items[-MAX_ITEMS:]))
                    pipe.expire(key + ":items", ttl_seconds)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            raise StateStoreError(f"redis conversation create failed: {exc}") from exc

    async def get(self, conversation_id: str) -> JsonDict | None:
        try:
            raw = await self._client.get(_KEY + conversation_id)
        except (RedisError, OSError) as exc:
            raise StateStoreError(f"redis conversation get failed: {exc}") from exc
        return None if raw is None else _decoded(raw)

    async def update(self, conversation: JsonDict, ttl_seconds: int) -> None:
        key = _KEY + conversation["id"]
        try:
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.set(key, orjson.dumps(conversation), ex=ttl_seconds, xx=True)
                pipe.expire(key + ":items", ttl_seconds)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            raise StateStoreError(f"redis conversation update failed: {exc}") from exc

    async def items(self, conversation_id: str) -> list[JsonDict]:
        try:
            raw = await self._client.lrange(_KEY + conversation_id + ":items", 0, MAX_ITEMS - 1)
        except (RedisError, OSError) as exc:
            raise StateStoreError(f"redis conversation items failed: {exc}") from exc
        return [_decoded(entry) for entry in raw]

    async def append(self, conversation_id: str, items: list[JsonDict], ttl_seconds: int) -> None:
        if not items:
            return
        key = _KEY + conversation_id
        try:
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.rpush(key + ":items", *(_encoded(item) for item in items))
                pipe.ltrim(key + ":items", -MAX_ITEMS, -1)
                pipe.expire(key + ":items", ttl_seconds)
                pipe.expire(key, ttl_seconds)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            raise StateStoreError(f"redis conversation append failed: {exc}") from exc

    async def delete(self, conversation_id: str) -> bool:
        key = _KEY + conversation_id
        try:
            return bool(await self._client.delete(key, key + ":items"))
        except (RedisError, OSError) as exc:
            raise StateStoreError(f"redis conversation delete failed: {exc}") from exc

    async def delete_item(self, conversation_id: str, item_id: str) -> bool:
        key = _KEY + conversation_id + ":items"
        try:
            raw = await self._client.lrange(key, 0, MAX_ITEMS - 1)
            for entry in raw:
                if _decoded(entry).get("id") == item_id:
                    return bool(await self._client.lrem(key, 1, cast(str, entry)))  # bytes: sent as they are
        except (RedisError, OSError) as exc:
            raise StateStoreError(f"redis conversation item delete failed: {exc}") from exc
        return False


def _encoded(item: JsonDict) -> bytes:
    raw = orjson.dumps(item)
    if len(raw) > MAX_ITEM_BYTES:
        raise StateStoreError(f"conversation item of {len(raw)} bytes exceeds {MAX_ITEM_BYTES}")
    return raw


def _decoded(raw: bytes | str) -> JsonDict:
    value = orjson.loads(raw)
    return value if isinstance(value, dict) else {}
