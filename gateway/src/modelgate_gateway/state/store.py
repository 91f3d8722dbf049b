"""What is stored per response and the store interface the handlers depend on.

A :class:`StoredResponse` is everything a chat-completions deployment needs to continue or show
a conversation: the Responses object, the chat messages that reproduce the conversation up to
and including it, and its input items. Encoding is orjson; the size cap bounds one entry.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

# One entry holds the whole conversation so far (inline images included); beyond this the
# conversation is not stored rather than letting one client grow Redis without bound.
MAX_STORED_BYTES = 4 * 1024 * 1024


class StateStoreError(Exception):
    """The store could not be reached or answered garbage; the caller maps it to a 5xx."""


class StateTooLargeError(StateStoreError):
    """An entry exceeded the size cap and was not stored."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"stored response would take {size} bytes, above the {limit}-byte cap")
        self.size = size
        self.limit = limit


@dataclass(frozen=True, slots=True)
class StoredResponse:
    response: dict[str, Any]
    """The final Responses object, as ``GET /v1/responses/{id}`` returns it."""
    messages: list[dict[str, Any]]
    """Chat messages of the conversation up to and including this response's output,
    without instructions (they are not carried over). The next turn's ``history``."""
    input_items: list[dict[str, Any]] = field(default_factory=list)
    """This response's input items, for ``GET /v1/responses/{id}/input_items``."""
    created_at: int = 0
    """Unix seconds, as in ``response.created_at``."""

    def encode(self) -> bytes:
        return orjson.dumps(
            {
                "response": self.response,
                "messages": self.messages,
                "input_items": self.input_items,
                "created_at": self.created_at,
            }
        )

    @classmethod
    def decode(cls, raw: bytes) -> StoredResponse:
        try:
            data = orjson.loads(raw)
            return cls(
                response=dict(data["response"]),
                messages=list(data["messages"]),
                input_items=list(data.get("input_items") or []),
                created_at=int(data.get("created_at") or 0),
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise StateStoreError(f"stored response is corrupt: {exc}") from exc


class ConversationStore(Protocol):
    """Shared conversation state keyed by response id. Methods raise :class:`StateStoreError`."""

    async def get(self, response_id: str) -> StoredResponse | None:
        """The stored entry, or ``None`` when unknown or expired."""
        ...

    async def put(self, response_id: str, stored: StoredResponse, ttl_seconds: int) -> None:
        """Store (or replace) an entry that expires after ``ttl_seconds``.

        Raises :class:`StateTooLargeError` above the size cap, storing nothing.
        """
        ...

    async def delete(self, response_id: str) -> bool:
        """Remove an entry; ``True`` if it existed."""
        ...

    async def close(self) -> None:
        """Release connections; the store is unusable afterwards."""
        ...
