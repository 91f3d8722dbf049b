"""Conversation state the gateway keeps for upstreams that keep none (chat-completions).

:class:`ConversationStore` is the interface the handlers use (``previous_response_id``,
retrieve, delete, input_items); :class:`RedisConversationStore` is the implementation shared by
all replicas. Nothing here knows about HTTP or the Responses wire format beyond plain dicts.
"""

from typing import TYPE_CHECKING, Any

from .store import (
    MAX_STORED_BYTES,
    ConversationStore,
    StateStoreError,
    StateTooLargeError,
    StoredResponse,
)

if TYPE_CHECKING:
    from .redis_store import RedisConversationStore


def __getattr__(name: str) -> Any:
    """``RedisConversationStore`` on first use: importing redis costs ~5 MiB of memory."""
    if name == "RedisConversationStore":
        from .redis_store import RedisConversationStore

        return RedisConversationStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "MAX_STORED_BYTES",
    "ConversationStore",
    "RedisConversationStore",
    "StateStoreError",
    "StateTooLargeError",
    "StoredResponse",
]
