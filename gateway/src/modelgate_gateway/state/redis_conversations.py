"""Conversations in Redis (:class:`RedisConversations`), next to the stored responses.

Its own module so that importing :mod:`.conversations` (the mock provider does) never imports
redis; :mod:`.redis_store` hands one out for its client.
"""

from __future__ import annotations

from typing import cast

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from .conversations import MAX_ITEM_BYTES, MAX_ITEMS, JsonDict
from .store import StateStoreError

_KEY = "modelgate:conv:"


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
