"""Conversation state the gateway keeps for upstreams that keep none (chat-completions).

:class:`ConversationStore` is the interface the handlers use (``previous_response_id``,
retrieve, delete, input_items); :class:`RedisConversationStore` is the implementation shared by
all replicas. Nothing here knows about HTTP or the Responses wire format beyond plain dicts.
"""

from .redis_store import RedisConversationStore
from .store import (
    MAX_STORED_BYTES,
    ConversationStore,
    StateStoreError,
    StateTooLargeError,
    StoredResponse,
)

__all__ = [
    "MAX_STORED_BYTES",
    "ConversationStore",
    "RedisConversationStore",
    "StateStoreError",
    "StateTooLargeError",
    "StoredResponse",
]
