"""The Conversations API served by the gateway itself, for deployments whose upstream keeps no state.

Chat-completions deployments (conversations in Redis) and the mock provider (in process) answer
``/conversations…`` calls here, over a :class:`~modelgate_gateway.state.conversations.Conversations`
store, with OpenAI's shapes; a create with ``conversation`` reads the items as the turn's history
(:func:`history`) and appends its input and output (:func:`record_turn`). Ids are the upstream's
own (``conv_…``): the handler turns them into signed gateway ids like any upstream's.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from typing import Any

import orjson

from ..errors import InvalidRequest
from ..state.conversations import Conversations
from .translation.responses_chatcompletions import stored_input_items
from .transport import MemoryReply, input_items_page, json_error

_MAX_NEW_ITEMS = 20  # per create or items.create call, as OpenAI
_MAX_METADATA_KEYS = 16


def _new_items(raw: Any, param: str) -> list[dict[str, Any]]:
    if raw is None:
        return []
    if not isinstance(raw, list) or len(raw) > _MAX_NEW_ITEMS:
        raise InvalidRequest(f"'{param}' must be a list of at most {_MAX_NEW_ITEMS} items.", param=param)
    return stored_input_items({"input": raw})


def _metadata(raw: Any) -> dict[str, str]:
    if raw is None:
        return {}
    if (not isinstance(raw, dict) or len(raw) > _MAX_METADATA_KEYS
            or not all(isinstance(k, str) and isinstance(v, str) and len(k) <= 64 and len(v) <= 512
                       for k, v in raw.items())):
        raise InvalidRequest("'metadata' must map at most 16 keys (64 characters) to strings (512 characters).",
                             param="metadata")
    return dict(raw)


def _list(items: list[dict[str, Any]]) -> MemoryReply:
    return MemoryReply(200, orjson.dumps({"object": "list", "data": items, "has_more": False,
                                          "first_id": items[0]["id"] if items else None,
                                          "last_id": items[-1]["id"] if items else None}))


async def serve(store: Conversations, ttl_seconds: int, method: str, path: str, payload: Mapping[str, Any] | None,
                query: Mapping[str, str]) -> MemoryReply:
    """Answer one Conversations API call; ``path`` starts with ``/conversations``."""
    parts = path.strip("/").split("/")
    body = payload or {}
    if parts == ["conversations"] and method == "POST":
        created: dict[str, Any] = {"id": "conv_" + os.urandom(24).hex(), "object": "conversation",
                                   "created_at": int(time.time()), "metadata": _metadata(body.get("metadata"))}
        await store.create(created, _new_items(body.get("items"), "items"), ttl_seconds)
        return MemoryReply(200, orjson.dumps(created))
    conversation = await store.get(parts[1]) if len(parts) >= 2 else None
    if conversation is None:
        return json_error(404, "Conversation not found.", "not_found")
    if len(parts) == 2:
        return await _conversation(store, ttl_seconds, conversation, method, body)
    if parts[2] == "items" and len(parts) <= 4:
        return await _items(store, ttl_seconds, conversation, method, parts[3] if len(parts) == 4 else None,
                            body=body, query=query)
    return _unknown()


def _unknown() -> MemoryReply:
    return json_error(404, "Unknown conversations endpoint.", "not_found")


async def _conversation(store: Conversations, ttl_seconds: int, conversation: dict[str, Any], method: str,
                        body: Mapping[str, Any]) -> MemoryReply:
    if method == "GET":
        return MemoryReply(200, orjson.dumps(conversation))
    if method == "POST":
        conversation = {**conversation, "metadata": _metadata(body.get("metadata"))}
        await store.update(conversation, ttl_seconds)
        return MemoryReply(200, orjson.dumps(conversation))
    if method == "DELETE":
        await store.delete(conversation["id"])
        return MemoryReply(200, orjson.dumps({"id": conversation["id"], "object": "conversation.deleted",
                                              "deleted": True}))
    return _unknown()


async def _items(store: Conversations, ttl_seconds: int, conversation: dict[str, Any], method: str,
                 item_id: str | None, *, body: Mapping[str, Any], query: Mapping[str, str]) -> MemoryReply:
    cid = conversation["id"]
    if item_id is None and method == "POST":
        added = _new_items(body.get("items"), "items")
        await store.append(cid, added, ttl_seconds)
        return _list(added)
    if item_id is None and method == "GET":
        return MemoryReply(200, orjson.dumps(input_items_page(await store.items(cid), query)))
    if item_id is not None and method == "GET":
        found = next((item for item in await store.items(cid) if item.get("id") == item_id), None)
        return MemoryReply(200, orjson.dumps(found)) if found else json_error(404, "Item not found.", "not_found")
    if item_id is not None and method == "DELETE":
        if not await store.delete_item(cid, item_id):
            return json_error(404, "Item not found.", "not_found")
        return MemoryReply(200, orjson.dumps(conversation))
    return _unknown()


def conversation_id(payload: Mapping[str, Any]) -> str | None:
    """The (upstream) conversation id a create names, in either of its two shapes."""
    raw = payload.get("conversation")
    if isinstance(raw, dict):
        raw = raw.get("id")
    return raw if isinstance(raw, str) and raw else None


async def history(store: Conversations, payload: Mapping[str, Any]) -> list[dict[str, Any]] | None:
    """The conversation's items, the history of this turn; None when the create names none.

    Raises InvalidRequest (400 ``conversation``) when it names one that does not exist.
    """
    cid = conversation_id(payload)
    if cid is None:
        return None
    if await store.get(cid) is None:
        raise InvalidRequest(f"Conversation with id '{cid}' not found.", param="conversation",
                             code="conversation_not_found")
    return await store.items(cid)


async def record_turn(store: Conversations, payload: Mapping[str, Any], response: Mapping[str, Any],
                      ttl_seconds: int) -> None:
    """Append a turn's input items and the response's output items to the conversation it names."""
    cid = conversation_id(payload)
    if cid is not None:
        items = [*stored_input_items(dict(payload)), *(response.get("output") or [])]
        await store.append(cid, items, ttl_seconds)
