"""Redis-backed :class:`~modelgate_gateway.state.store.ConversationStore` shared by all replicas.

One key per response (``modelgate:resp:<id>``) holding the orjson-encoded entry, with a TTL set
atomically by ``SET … EX``. Every call is bounded by socket timeouts so a dead Redis fails a
request quickly instead of hanging the hot path; failures surface as ``StateStoreError``.
"""

from __future__ import annotations

import redis.asyncio as aioredis
from redis.exceptions import RedisError
from redis.maint_notifications import MaintNotificationsConfig

from .redis_conversations import RedisConversations
from .store import MAX_STORED_BYTES, StateStoreError, StateTooLargeError, StoredResponse

KEY_PREFIX = "modelgate:resp:"
# Redis answers in well under a millisecond on a LAN; seconds of silence mean it is gone.
DEFAULT_TIMEOUT_SECONDS = 2.0


class RedisConversationStore:
    def __init__(self, client: aioredis.Redis, *, max_bytes: int = MAX_STORED_BYTES) -> None:
        self._client = client
        self._max_bytes = max_bytes

    @classmethod
    def from_url(
        cls,
        url: str,
        password: str | None = None,
        *,
        timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
        max_bytes: int = MAX_STORED_BYTES,
    ) -> RedisConversationStore:
        """A store for ``redis://`` or ``rediss://`` ``url``; connects lazily on first use."""
        # No CLIENT SETINFO or maintenance-notifications handshake, as for the governance ledger
        # (governance.ledger.Ledger.from_url): a Redis that refuses them leaves a reference cycle
        # holding the connecting request's task, and each costs a round trip per connection.
        client = aioredis.Redis.from_url(
            url,
            password=password,
            socket_timeout=timeout_seconds,
            socket_connect_timeout=timeout_seconds,
            health_check_interval=30,
            maint_notifications_config=MaintNotificationsConfig(enabled=False),
            driver_info=None,
        )
        return cls(client, max_bytes=max_bytes)

    @property
    def client(self) -> aioredis.Redis:
        """The connection pool, shared with the conversations kept next to the responses and the background
        ledger (same Redis, same timeouts)."""
        return self._client

    def conversations(self) -> RedisConversations:
        """The Conversations API's store in the same Redis."""
        return RedisConversations(self._client)

    @staticmethod
    def key(response_id: str) -> str:
        return KEY_PREFIX + response_id

    async def get(self, response_id: str) -> StoredResponse | None:
        try:
            raw = await self._client.get(self.key(response_id))
        except (RedisError, OSError) as exc:
            raise StateStoreError(f"redis get failed: {exc}") from exc
        if raw is None:
            return None
        return StoredResponse.decode(raw.encode() if isinstance(raw, str) else raw)

    async def put(self, response_id: str, stored: StoredResponse, ttl_seconds: int) -> None:
        if ttl_seconds <= 0:
            raise ValueError("ttl_seconds must be positive")
        payload = stored.encode()
        if len(payload) > self._max_bytes:
            raise StateTooLargeError(len(payload), self._max_bytes)
        try:
            await self._client.set(self.key(response_id), payload, ex=ttl_seconds)
        except (RedisError, OSError) as exc:
            raise StateStoreError(f"redis set failed: {exc}") from exc

    async def delete(self, response_id: str) -> bool:
        try:
            removed = await self._client.delete(self.key(response_id))
        except (RedisError, OSError) as exc:
            raise StateStoreError(f"redis delete failed: {exc}") from exc
        return bool(removed)

    async def ttl(self, response_id: str) -> int | None:
        """Seconds left before the entry expires; ``None`` if it does not exist."""
        try:
            left = int(await self._client.ttl(self.key(response_id)))
        except (RedisError, OSError) as exc:
            raise StateStoreError(f"redis ttl failed: {exc}") from exc
        return None if left < 0 else left

    async def close(self) -> None:
        await self._client.aclose()
