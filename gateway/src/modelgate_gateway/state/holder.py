"""The conversation store of the current config, swapped by the reloader when its Redis settings change."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .redis_store import RedisConversationStore


class StoreHolder:
    """The conversation store of the current config, replaced when its Redis URL changes."""

    def __init__(self) -> None:
        self.store: RedisConversationStore | None = None
        self.ttl_seconds = 30 * 86400
        self._key: tuple[str | None, str | None] = (None, None)

    async def configure(self, url: str | None, password: str | None, ttl_seconds: int) -> None:
        self.ttl_seconds = ttl_seconds
        if (url, password) == self._key:
            return
        old, self._key = self.store, (url, password)
        self.store = None
        if url:
            # Imported here: the redis client costs ~5 MiB of memory, paid only by gateways
            # whose config names a store (a sidecar per pod usually does not).
            from .redis_store import RedisConversationStore

            self.store = RedisConversationStore.from_url(url, password=password)
        if old is not None:
            await old.close()

    async def close(self) -> None:
        if self.store is not None:
            await self.store.close()
            self.store = None
