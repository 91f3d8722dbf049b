"""Responses create body -> Chat Completions request body.

Every top-level Responses field is handled explicitly: translated, accepted as harmless (and
documented in ``docs/translation.md``), or refused with :class:`UntranslatableError`. Unknown
fields are refused too, so nothing that changes behaviour is ever dropped silently. Pure.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .responses_chatcompletions_input import JsonDict, UntranslatableError, input_messages
from .responses_chatcompletions_tools import chat_tools

LOGPROBS_INCLUDE = "message.output_text.logprobs"
_KNOWN_INCLUDES = frozenset(
    {
        "file_search_call.results",
        "web_search_call.results",
        "web_search_call.action.sources",
        "message.input_image.image_url",
        "computer_call_output.output.image_url",
        "code_interpreter_call.outputs",
        "reasoning.encrypted_content",
        LOGPROBS_INCLUDE,
    }
)
_SAME_NAME_FIELDS = (
    "temperature",
    "top_p",
    "user",
    "safety_identifier",
    "prompt_cache_key",
    "prompt_cache_retention",
    "service_tier",
)
OPENAI_ONLY_FIELDS = frozenset({"safety_identifier", "prompt_cache_key", "prompt_cache_retention", "service_tier"})
"""Same-name fields only OpenAI's own Chat Completions knows; they never change what a model
produces, so for other chat servers (vLLM, llama.cpp, ...) they are dropped (and named), not sent."""
# Read elsewhere (model, input, instructions, history) or echoed only; nothing to send upstream.
_ECHO_ONLY_FIELDS = frozenset(
    {
        "model",
        "input",
        "instructions",
        "previous_response_id",
        "store",
        "metadata",
        "max_tool_calls",
        "tools",
        "conversation",  # the transport reads the conversation's items into ``history``
    }
)
# Fields that never change what the model produces (what the client is, how OpenAI bills or
# caches): a chat upstream has no use for them, so they are left out, not refused, and named in
# ``dropped`` for the log. Codex sends ``client_metadata`` on every request.
DROPPED_FIELDS = frozenset({"client_metadata"})


def translate_request(
    body: JsonDict,
    upstream_model: str,
    history: list[JsonDict] | None = None,
    *,
    drop_unsupported_tools: bool = False,
    dropped: list[str] | None = None,
    openai_fields: bool = True,
) -> JsonDict:
    """Build the chat-completions body for ``body`` sent to ``upstream_model``.

    ``history`` holds the chat messages of the conversation so far (up to ``previous_response_id``,
    or the items of the ``conversation``, loaded from the state store); without it a
    ``previous_response_id`` is refused. What is
    left out (fields of :data:`DROPPED_FIELDS`, tools a deployment drops) is appended to
    ``dropped``. ``openai_fields``: the upstream is OpenAI's (or Azure's) Chat Completions, which
    takes :data:`OPENAI_ONLY_FIELDS`.
    """
    _check_fields(body, dropped)
    chat: JsonDict = {"model": upstream_model, "messages": _messages(body, history)}
    if body.get("tools") is not None:
        tools = chat_tools(body["tools"], drop_unsupported=drop_unsupported_tools, dropped=dropped)
        if tools:
            chat["tools"] = tools
    for key in _SAME_NAME_FIELDS:
        if body.get(key) is not None:
            if openai_fields or key not in OPENAI_ONLY_FIELDS:
                chat[key] = body[key]
            elif dropped is not None:
                dropped.append(key)
    for key, handler in _FIELD_HANDLERS.items():
        if body.get(key) is not None:
            handler(body[key], chat, body)
    return chat


def _check_fields(body: JsonDict, dropped: list[str] | None) -> None:
    """Refuse unknown fields; name the dropped ones."""
    for key in body:
        if key in DROPPED_FIELDS:
            if dropped is not None:
                dropped.append(key)
        elif (
            key not in _FIELD_HANDLERS
            and key not in _ECHO_ONLY_FIELDS
            and key not in _SAME_NAME_FIELDS
        ):
            raise UntranslatableError(
                key, f"'{key}' is not supported for chat-completions deployments."
            )


def _messages(body: JsonDict, history: list[JsonDict] | None) -> list[JsonDict]:
    messages: list[JsonDict] = []
    instructions = body.get("instructions")
    if instructions is not None:
        if not isinstance(instructions, str):
            raise UntranslatableError("instructions", "instructions must be a string.")
        # Instructions of earlier turns are not carried over (Responses semantics), so they are
        # never part of the stored history and always lead this request's messages.
        messages.append({"role": "system", "content": instructions})
    if body.get("previous_response_id") is not None and history is None:
        raise UntranslatableError(
            "previous_response_id",
            "previous_response_id needs the gateway's conversation store "
            "(spec.state.redisUrl), which is not configured for chat-completions deployments.",
        )
    if history is not None:
        messages.extend(history)
    if body.get("input") is None:
        if not messages or messages[-1]["role"] == "system":
            raise UntranslatableError("input", "input is required.")
    else:
        messages.extend(input_messages(body["input"]))
    return messages


def _tool_choice(choice: Any, chat: JsonDict, body: JsonDict) -> None:
    if choice in ("none", "auto") and not chat.get("tools"):
        return  # chat APIs refuse tool_choice without tools; with no tools both mean "no calls"
    if choice in ("none", "auto", "required"):
        chat["tool_choice"] = choice
        return
    kind = choice.get("type") if isinstance(choice, dict) else None
    if kind == "function" and isinstance(choice.get("name"), str):
        chat["tool_choice"] = {"type": "function", "function": {"name": choice["name"]}}
        return
    if kind == "allowed_tools":
        tools = choice.get("tools") or []
        if any(not isinstance(t, dict) or t.get("type") != "function" for t in tools):
            raise UntranslatableError(
                "tool_choice.tools", "Only function tools can be allowed on a chat upstream."
            )
        allowed = [{"type": "function", "function": {"name": t.get("name")}} for t in tools]
        chat["tool_choice"] = {
            "type": "allowed_tools",
            "allowed_tools": {"mode": choice.get("mode", "auto"), "tools": allowed},
        }
        return
    raise UntranslatableError(
        "tool_choice", f"tool_choice {choice!r} cannot be expressed to a chat upstream."
    )


def _parallel_tool_calls(value: Any, chat: JsonDict, body: JsonDict) -> None:
    # Chat APIs reject parallel_tool_calls without tools; without tools it means nothing anyway.
    if chat.get("tools"):
        chat["parallel_tool_calls"] = bool(value)


def _max_output_tokens(value: Any, chat: JsonDict, body: JsonDict) -> None:
    chat["max_completion_tokens"] = value


def _text(text: Any, chat: JsonDict, body: JsonDict) -> None:
    if not isinstance(text, dict):
        raise UntranslatableError("text", "text must be an object.")
    for key in text:
        if key not in ("format", "verbosity"):
            raise UntranslatableError(f"text.{key}", f"text.{key} has no chat equivalent.")
    if text.get("verbosity") is not None:
        chat["verbosity"] = text["verbosity"]
    fmt = text.get("format")
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if fmt is None or kind == "text":
        return
    if kind == "json_object":
        chat["response_format"] = {"type": "json_object"}
        return
    if kind == "json_schema":
        schema: JsonDict = {"name": fmt.get("name"), "schema": fmt.get("schema")}
        for key in ("description", "strict"):
            if fmt.get(key) is not None:
                schema[key] = fmt[key]
        chat["response_format"] = {"type": "json_schema", "json_schema": schema}
        return
    raise UntranslatableError("text.format.type", f"Output format {kind!r} has no chat equivalent.")


def _reasoning(reasoning: Any, chat: JsonDict, body: JsonDict) -> None:
    if not isinstance(reasoning, dict):
        raise UntranslatableError("reasoning", "reasoning must be an object.")
    for key, value in reasoning.items():
        # summary/generate_summary ask for summaries "when available"; chat upstreams have none.
        if key not in ("effort", "summary", "generate_summary") and value is not None:
            raise UntranslatableError(
                f"reasoning.{key}", f"reasoning.{key} has no chat equivalent."
            )
    if reasoning.get("effort") is not None:
        chat["reasoning_effort"] = reasoning["effort"]


def _stream(value: Any, chat: JsonDict, body: JsonDict) -> None:
    if value:
        chat["stream"] = True
        # Usage arrives only in the last chunk, and only when asked for.
        chat["stream_options"] = {"include_usage": True}


def _include(value: Any, chat: JsonDict, body: JsonDict) -> None:
    if not isinstance(value, list):
        raise UntranslatableError("include", "include must be a list.")
    for i, entry in enumerate(value):
        if entry not in _KNOWN_INCLUDES:
            raise UntranslatableError(f"include[{i}]", f"Unknown include value {entry!r}.")
    if LOGPROBS_INCLUDE in value:
        chat["logprobs"] = True


def _top_logprobs(value: Any, chat: JsonDict, body: JsonDict) -> None:
    if value:
        chat["logprobs"] = True
        chat["top_logprobs"] = value


def _background(value: Any, chat: JsonDict, body: JsonDict) -> None:
    if value is not False:
        raise UntranslatableError(
            "background",
            "background=true needs a Responses deployment: a chat-completions upstream answers only while "
            "the request is open, and the gateway does not run responses in the background for it.",
        )


def _must_be(
    allowed: tuple[Any, ...],
) -> Callable[[str], Callable[[Any, JsonDict, JsonDict], None]]:
    def for_field(name: str) -> Callable[[Any, JsonDict, JsonDict], None]:
        def check(value: Any, chat: JsonDict, body: JsonDict) -> None:
            if value not in allowed:
                raise UntranslatableError(
                    name, f"{name}={value!r} is not supported for chat-completions deployments."
                )

        return check

    return for_field


def _refuse(name: str) -> Callable[[Any, JsonDict, JsonDict], None]:
    def refuse(value: Any, chat: JsonDict, body: JsonDict) -> None:
        raise UntranslatableError(
            name, f"'{name}' is not supported for chat-completions deployments."
        )

    return refuse


_FIELD_HANDLERS: dict[str, Callable[[Any, JsonDict, JsonDict], None]] = {
    "tool_choice": _tool_choice,
    "parallel_tool_calls": _parallel_tool_calls,
    "max_output_tokens": _max_output_tokens,
    "text": _text,
    "reasoning": _reasoning,
    "stream": _stream,
    "stream_options": lambda value, chat, body: (
        None
    ),  # only include_obfuscation, an OpenAI transport detail
    "include": _include,
    "top_logprobs": _top_logprobs,
    "truncation": _must_be(("disabled",))("truncation"),
    "background": _background,
    "prompt": _refuse("prompt"),
    "context_management": _refuse("context_management"),
    "moderation": _refuse("moderation"),
    "access_programs": _refuse("access_programs"),
    "background_options": _refuse("background_options"),
    "image": _refuse("image"),
    "prompt_cache_options": _refuse("prompt_cache_options"),
}
