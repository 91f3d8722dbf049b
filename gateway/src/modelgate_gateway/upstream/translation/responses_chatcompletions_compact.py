"""``POST /responses/compact`` over a chat-completions upstream: the model summarises, the gateway packs.

OpenAI's compaction returns the conversation's user messages followed by one ``compaction`` item
whose ``encrypted_content`` only OpenAI can read. A chat upstream has no such endpoint, so the
bridge asks the model itself for a summary (one ordinary chat call over the whole conversation plus
:data:`COMPACTION_PROMPT`) and packs it into a compaction item of its own: ``encrypted_content`` is
``mgc1.`` + base64url of the summary. It is not encrypted (the client holds the conversation
anyway); it is opaque, as the API promises. When such an item comes back in ``input``, it becomes a
user message carrying the summary (``responses_chatcompletions_input``). Pure.
"""

from __future__ import annotations

import base64
from typing import Any

from .responses_chatcompletions_input import BRIDGE_COMPACTION_PREFIX, SUMMARY_HEADER, JsonDict
from .responses_chatcompletions_response import map_usage, new_item_id

COMPACTION_PROMPT = (
    "Summarise the conversation so far so that it can be continued from the summary alone: the user's "
    "goals and constraints, decisions made, facts and results established (names, numbers, file paths, "
    "tool results that matter), and what remains to be done. Write only the summary."
)


def compaction_item(summary: str) -> JsonDict:
    encoded = base64.urlsafe_b64encode(summary.encode()).decode()
    return {"type": "compaction", "id": new_item_id("cmp"), "encrypted_content": BRIDGE_COMPACTION_PREFIX + encoded}


def user_items(messages: list[JsonDict]) -> list[JsonDict]:
    """The conversation's user messages as Responses items (what a compaction keeps verbatim)."""
    items: list[JsonDict] = []
    for message in messages:
        if message.get("role") != "user":
            continue
        content = message.get("content")
        parts = [content] if isinstance(content, str) else [
            part.get("text") for part in content or [] if isinstance(part, dict) and part.get("type") == "text"]
        texts = [text for text in parts if isinstance(text, str) and not text.startswith(SUMMARY_HEADER)]
        if texts:
            items.append({"id": new_item_id("msg"), "type": "message", "role": "user", "status": "completed",
                          "content": [{"type": "input_text", "text": text} for text in texts]})
    return items


def compacted_response(completion: Any, kept: list[JsonDict], response_id: str, created_at: int) -> JsonDict:
    """The ``response.compaction`` object for the chat upstream's summary."""
    choices = completion.get("choices") if isinstance(completion, dict) else None
    message = (choices[0].get("message") or {}) if choices else {}
    content = message.get("content")
    summary = content if isinstance(content, str) else ""
    usage = map_usage(completion.get("usage") if isinstance(completion, dict) else None) or map_usage({})
    return {"id": response_id, "object": "response.compaction", "created_at": created_at,
            "output": [*kept, compaction_item(summary)], "usage": usage}
