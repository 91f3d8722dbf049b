"""Chat Completions result -> Responses ``response`` object, plus the pieces streaming shares.

:func:`translate_response` handles a whole (non-streaming) ``chat.completion``; the helpers
(response skeleton echoing the request, usage and status mapping, output items, logprobs) are
reused by :mod:`.responses_chatcompletions_stream`. Pure: ids come from :mod:`secrets`, times
are passed in.
"""

from __future__ import annotations

import secrets
from typing import Any

from ...observability.usage import usage_from_mapping
from .responses_chatcompletions_input import JsonDict
from .responses_chatcompletions_tools import namespaced_names

# finish_reason -> Responses incomplete_details.reason; anything else completes normally.
_INCOMPLETE_REASONS = {"length": "max_output_tokens", "content_filter": "content_filter"}


def new_item_id(prefix: str) -> str:
    """An output item id shaped like OpenAI's (``msg_…``, ``fc_…``): prefix plus 48 hex digits."""
    return f"{prefix}_{secrets.token_hex(24)}"


def map_usage(chat_usage: Any) -> JsonDict | None:
    """Chat ``usage`` -> Responses ``usage``; ``None`` when the upstream reported none.

    Read by the one usage parser (:func:`~modelgate_gateway.observability.usage.usage_from_mapping`),
    so the client sees the same counts the gateway meters and bills.
    """
    usage = usage_from_mapping(chat_usage)
    if usage is None:
        return None
    total = chat_usage.get("total_tokens")
    return {
        "input_tokens": usage.input_tokens,
        "input_tokens_details": {"cached_tokens": usage.cached_input_tokens, "cache_write_tokens": 0},
        "output_tokens": usage.output_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "total_tokens": total if type(total) is int and total > 0 else usage.input_tokens + usage.output_tokens,
    }


def status_for(finish_reason: str | None) -> tuple[str, JsonDict | None]:
    """(response status, incomplete_details) for a chat ``finish_reason``."""
    reason = _INCOMPLETE_REASONS.get(finish_reason or "")
    if reason is None:
        return "completed", None
    return "incomplete", {"reason": reason}


def response_skeleton(
    *, response_id: str, model: str, created_at: int, request: JsonDict
) -> JsonDict:
    """An ``in_progress`` Responses object echoing the request's settings, as OpenAI does."""
    text = request.get("text") or {}
    reasoning = request.get("reasoning") or {}
    return {
        "id": response_id,
        "object": "response",
        "created_at": created_at,
        "status": "in_progress",
        "background": False,
        "completed_at": None,
        "error": None,
        "incomplete_details": None,
        "instructions": request.get("instructions"),
        "max_output_tokens": request.get("max_output_tokens"),
        "max_tool_calls": request.get("max_tool_calls"),
        "model": model,
        "output": [],
        "parallel_tool_calls": _default(request, "parallel_tool_calls", True),
        "previous_response_id": request.get("previous_response_id"),
        "prompt_cache_key": request.get("prompt_cache_key"),
        "reasoning": {"effort": reasoning.get("effort"), "summary": reasoning.get("summary")},
        "safety_identifier": request.get("safety_identifier"),
        "service_tier": _default(request, "service_tier", "auto"),
        "store": _default(request, "store", True),
        "temperature": _default(request, "temperature", 1.0),
        "text": {
            "format": text.get("format") or {"type": "text"},
            "verbosity": text.get("verbosity") or "medium",
        },
        "tool_choice": _default(request, "tool_choice", "auto"),
        "tools": list(request.get("tools") or []),
        "top_logprobs": _default(request, "top_logprobs", 0),
        "top_p": _default(request, "top_p", 1.0),
        "truncation": _default(request, "truncation", "disabled"),
        "usage": None,
        "user": request.get("user"),
        "metadata": request.get("metadata") or {},
        "conversation": _conversation(request.get("conversation")),
    }


def _conversation(value: Any) -> JsonDict | None:
    """The response's ``conversation``: ``{"id": …}`` whichever shape the request used."""
    if isinstance(value, dict):
        value = value.get("id")
    return {"id": value} if isinstance(value, str) and value else None


def _default(request: JsonDict, key: str, default: Any) -> Any:
    value = request.get(key)
    return default if value is None else value


def output_logprobs(chat_logprobs: Any) -> list[JsonDict]:
    """Chat ``choice.logprobs.content`` -> ``output_text.logprobs`` (final item shape)."""
    if not isinstance(chat_logprobs, list):
        return []
    return [
        {
            "token": entry.get("token", ""),
            "bytes": entry.get("bytes") or [],
            "logprob": entry.get("logprob", 0.0),
            "top_logprobs": [
                {
                    "token": top.get("token", ""),
                    "bytes": top.get("bytes") or [],
                    "logprob": top.get("logprob", 0.0),
                }
                for top in entry.get("top_logprobs") or []
            ],
        }
        for entry in chat_logprobs
    ]


def delta_logprobs(logprobs: list[JsonDict]) -> list[JsonDict]:
    """Final-shape logprobs -> the leaner shape of ``output_text.delta``/``.done`` events."""
    return [
        {
            "token": entry["token"],
            "logprob": entry["logprob"],
            "top_logprobs": [
                {"token": t["token"], "logprob": t["logprob"]} for t in entry["top_logprobs"]
            ],
        }
        for entry in logprobs
    ]


def text_part(text: str, logprobs: list[JsonDict]) -> JsonDict:
    return {"type": "output_text", "annotations": [], "logprobs": logprobs, "text": text}


def message_item(item_id: str, status: str, content: list[JsonDict]) -> JsonDict:
    return {
        "id": item_id,
        "type": "message",
        "status": status,
        "content": content,
        "role": "assistant",
    }


def function_call_item(
    item_id: str,
    status: str,
    call_id: str,
    name: str,
    arguments: str,
    namespaces: dict[str, tuple[str, str]] | None = None,
) -> JsonDict:
    """A ``function_call`` item; a flattened namespace tool's call gets its name and namespace back."""
    item = {
        "id": item_id,
        "type": "function_call",
        "status": status,
        "arguments": arguments,
        "call_id": call_id,
        "name": name,
    }
    original = namespaces.get(name) if namespaces else None
    if original is not None:
        item["namespace"], item["name"] = original
    return item


def translate_response(
    chat: JsonDict,
    *,
    response_id: str,
    model: str,
    created_at: int,
    request: JsonDict,
    completed_at: int | None = None,
) -> JsonDict:
    """Translate a non-streaming ``chat.completion`` into the Responses object for ``request``."""
    response = response_skeleton(
        response_id=response_id, model=model, created_at=created_at, request=request
    )
    choices = chat.get("choices") or []
    choice = choices[0] if choices else {}
    message = choice.get("message") or {}
    status, incomplete = status_for(choice.get("finish_reason"))
    item_status = "completed" if status == "completed" else "incomplete"
    content: list[JsonDict] = []
    if message.get("content"):
        chat_logprobs = choice.get("logprobs")
        logprobs = output_logprobs(
            chat_logprobs.get("content") if isinstance(chat_logprobs, dict) else None
        )
        content.append(text_part(message["content"], logprobs))
    if message.get("refusal"):
        content.append({"type": "refusal", "refusal": message["refusal"]})
    output: list[JsonDict] = []
    namespaces = namespaced_names(request.get("tools"))
    if content:
        output.append(message_item(new_item_id("msg"), item_status, content))
    for call in message.get("tool_calls") or []:
        function = call.get("function") or {}
        output.append(
            function_call_item(
                new_item_id("fc"),
                item_status,
                call.get("id") or new_item_id("call"),
                function.get("name") or "",
                function.get("arguments") or "",
                namespaces,
            )
        )
    response.update(
        status=status,
        incomplete_details=incomplete,
        output=output,
        usage=map_usage(chat.get("usage")),
        completed_at=completed_at if status == "completed" else None,
    )
    return response


def output_text(response: JsonDict) -> str:
    """Concatenated ``output_text`` parts of a Responses object (the SDK's ``output_text``)."""
    return "".join(
        part.get("text", "")
        for item in response.get("output") or []
        if item.get("type") == "message"
        for part in item.get("content") or []
        if part.get("type") == "output_text"
    )
