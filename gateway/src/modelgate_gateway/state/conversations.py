"""Conversations (the Conversations API) kept by the gateway for upstreams that keep none.

A conversation is its object (``id``, ``created_at``, ``metadata``) and an ordered list of items.
Chat-completions deployments keep them in the Redis of the response store, shared by all replicas
(:class:`~.redis_conversations.RedisConversations`, in its own module: importing redis costs
~5 MiB, paid only with a store): the object under ``modelgate:conv:<id>`` and the items as a
Redis list under ``modelgate:conv:<id>:items``, so appending a turn is one atomic ``RPUSH`` (two
responses of one conversation finishing at once both land) and both keys' TTL is renewed on every
write. The mock provider keeps them in process (:class:`MemoryConversations`). Both are bounded:
at most :data:`MAX_ITEMS` items per conversation, oldest dropped first.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Protocol

MAX_ITEMS = 10_000
MAX_ITEM_BYTES = 1024 * 1024
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
