"""What a chat-completions deployment must remember about a response for the next turn.

The Responses API keeps conversations server-side; a chat upstream keeps nothing. These pure
helpers compute what the gateway stores (:mod:`modelgate_gateway.state`): the chat messages that
reproduce the conversation after a response, and the response's input items for
``GET /v1/responses/{id}/input_items``.
"""

from __future__ import annotations

from typing import Any

from .responses_chatcompletions_input import JsonDict, input_messages
from .responses_chatcompletions_response import new_item_id

_ID_PREFIXES = {
    "message": "msg",
    "function_call": "fc",
    "function_call_output": "fco",
    "reasoning": "rs",
}


def conversation_messages(
    body: JsonDict, history: list[JsonDict] | None, response: JsonDict
) -> list[JsonDict]:
    """Chat messages of the conversation up to and including ``response``'s output.

    ``history`` is what ``previous_response_id`` or the ``conversation`` held (if anything).
    Instructions are left
    out on purpose: the Responses API does not carry them over to the next turn.
    """
    messages = list(history or [])
    if body.get("input") is not None:
        messages.extend(input_messages(body["input"]))
    # Output items are valid input items, so the same translation turns them into messages.
    messages.extend(input_messages(list(response.get("output") or [])))
    return messages


def stored_input_items(body: JsonDict) -> list[JsonDict]:
    """The request's ``input`` as the list ``input_items`` returns: typed items with ids."""
    raw = body.get("input")
    if raw is None:
        return []
    if isinstance(raw, str):
        raw = [{"role": "user", "content": raw}]
    return [_input_item(item) for item in raw if isinstance(item, dict)]


def _input_item(item: JsonDict) -> JsonDict:
    normalized: dict[str, Any] = dict(item)
    kind = normalized.setdefault("type", "message")
    if kind == "message":
        content = normalized.get("content")
        if isinstance(content, str):
            text_type = "output_text" if normalized.get("role") == "assistant" else "input_text"
            normalized["content"] = [{"type": text_type, "text": content}]
        normalized.setdefault("status", "completed")
    if not normalized.get("id"):
        normalized["id"] = new_item_id(_ID_PREFIXES.get(kind, "item"))
    return normalized
