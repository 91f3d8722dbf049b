"""Responses ``input`` items -> Chat Completions ``messages`` (one half of the request translation).

Pure: raises :class:`UntranslatableError` naming the exact field for anything a chat upstream
cannot represent, never drops it silently (reasoning items are the one documented exception).
Used by :mod:`.responses_chatcompletions_request` and by the conversation-state helpers.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

JsonDict = dict[str, Any]

# Item types that only make sense with OpenAI-hosted tools or server-side state.
_HOSTED_ITEM_TYPES = frozenset(
    {
        "item_reference",
        "file_search_call",
        "web_search_call",
        "computer_call",
        "computer_call_output",
        "code_interpreter_call",
        "image_generation_call",
        "local_shell_call",
        "local_shell_call_output",
        "shell_call",
        "shell_call_output",
        "apply_patch_call",
        "apply_patch_call_output",
        "mcp_list_tools",
        "mcp_approval_request",
        "mcp_approval_response",
        "mcp_call",
        "custom_tool_call",
        "custom_tool_call_output",
        "tool_search_call",
        "tool_search_output",
    }
)


def flat_name(namespace: Any, name: str) -> str:
    """The chat function name of a Responses function ``name`` in ``namespace`` (if any)."""
    return f"{namespace}__{name}" if isinstance(namespace, str) and namespace else name


class UntranslatableError(Exception):
    """A request field a chat-completions upstream cannot honour; the gateway answers 400.

    ``param`` is the JSON path of the field (``tools[0].type``), ``message`` says why.
    """

    def __init__(self, param: str, message: str) -> None:
        super().__init__(f"{param}: {message}")
        self.param = param
        self.message = message


def input_messages(raw_input: Any) -> list[JsonDict]:
    """Translate a Responses ``input`` (string or item list) into chat messages."""
    if isinstance(raw_input, str):
        return [{"role": "user", "content": raw_input}]
    if not isinstance(raw_input, list):
        raise UntranslatableError("input", "input must be a string or a list of items.")
    messages: list[JsonDict] = []
    for index, item in enumerate(raw_input):
        _append_item(messages, item, f"input[{index}]")
    return messages


def _append_item(messages: list[JsonDict], item: Any, path: str) -> None:
    if not isinstance(item, dict):
        raise UntranslatableError(path, "Each input item must be an object.")
    kind = item.get("type", "message" if "role" in item else None)
    if kind == "message":
        messages.append(_message(item, path))
    elif kind == "function_call":
        _append_function_call(messages, item, path)
    elif kind == "function_call_output":
        messages.append(
            {
                "role": "tool",
                "tool_call_id": _required_str(item, "call_id", path),
                "content": _tool_output(item.get("output"), f"{path}.output"),
            }
        )
    elif kind == "reasoning":
        # Reasoning items carry an upstream's hidden state (often encrypted); a chat upstream
        # cannot take them back, and leaving them out only costs that model's cached reasoning.
        return
    elif kind == "compaction":
        messages.append(_summary_message(item, path))
    elif kind in _HOSTED_ITEM_TYPES:
        raise UntranslatableError(
            f"{path}.type",
            f"Input items of type '{kind}' cannot be sent to a chat-completions upstream.",
        )
    else:
        raise UntranslatableError(f"{path}.type", f"Unknown input item type {kind!r}.")


BRIDGE_COMPACTION_PREFIX = "mgc1."
"""``encrypted_content`` of compaction items the bridge produced (responses_chatcompletions_compact)."""
SUMMARY_HEADER = "[Summary of the earlier conversation]\n"


def _summary_message(item: JsonDict, path: str) -> JsonDict:
    """The chat message for a compaction item the bridge produced: a user message carrying the
    summary. Another compaction item (an OpenAI organisation's, encrypted) cannot be read here."""
    content = item.get("encrypted_content")
    if isinstance(content, str) and content.startswith(BRIDGE_COMPACTION_PREFIX):
        try:
            summary = base64.urlsafe_b64decode(content[len(BRIDGE_COMPACTION_PREFIX):]).decode()
        except (binascii.Error, ValueError):
            raise UntranslatableError(f"{path}.encrypted_content", "The compaction item is damaged.") from None
        return {"role": "user", "content": SUMMARY_HEADER + summary}
    raise UntranslatableError(f"{path}.type", "This compaction item was produced by a provider organisation; "
                              "only it can read it.")


def _required_str(item: JsonDict, key: str, path: str) -> str:
    value = item.get(key)
    if not isinstance(value, str):
        raise UntranslatableError(f"{path}.{key}", f"'{key}' must be a string.")
    return value


def _message(item: JsonDict, path: str) -> JsonDict:
    role = item.get("role")
    content = item.get("content")
    if role == "assistant":
        return _assistant_message(content, path)
    if role not in ("user", "system", "developer"):
        raise UntranslatableError(f"{path}.role", f"Unsupported message role {role!r}.")
    # 'developer' is the newer name of 'system'; most chat-only servers know only 'system'.
    chat_role = "user" if role == "user" else "system"
    if isinstance(content, str):
        return {"role": chat_role, "content": content}
    if not isinstance(content, list):
        raise UntranslatableError(f"{path}.content", "content must be a string or a list of parts.")
    parts = [_input_part(part, f"{path}.content[{i}]") for i, part in enumerate(content)]
    if chat_role == "system":
        if any(part["type"] != "text" for part in parts):
            raise UntranslatableError(
                f"{path}.content", "System and developer messages take text only."
            )
        return {"role": "system", "content": "".join(part["text"] for part in parts)}
    if len(parts) == 1 and parts[0]["type"] == "text":
        return {"role": "user", "content": parts[0]["text"]}
    return {"role": "user", "content": parts}


def _input_part(part: Any, path: str) -> JsonDict:
    if not isinstance(part, dict):
        raise UntranslatableError(path, "Each content part must be an object.")
    kind = part.get("type")
    if kind in ("input_text", "output_text", "text"):
        return {"type": "text", "text": _required_str(part, "text", path)}
    if kind == "input_image":
        url = part.get("image_url")
        if not isinstance(url, str):
            raise UntranslatableError(
                f"{path}.file_id",
                "Images must be given by image_url (a URL or data URL); file ids live at OpenAI.",
            )
        image: JsonDict = {"url": url}
        if part.get("detail") is not None:
            image["detail"] = part["detail"]
        return {"type": "image_url", "image_url": image}
    if kind == "input_file":
        if part.get("file_url") is not None:
            raise UntranslatableError(
                f"{path}.file_url", "Chat upstreams take files inline (file_data) only."
            )
        file: JsonDict = {
            key: part[key]
            for key in ("file_data", "file_id", "filename")
            if part.get(key) is not None
        }
        return {"type": "file", "file": file}
    if kind == "input_audio":
        return {"type": "input_audio", "input_audio": part.get("input_audio")}
    raise UntranslatableError(f"{path}.type", f"Unsupported content part type {kind!r}.")


def _assistant_message(content: Any, path: str) -> JsonDict:
    if isinstance(content, str):
        return {"role": "assistant", "content": content}
    if not isinstance(content, list):
        raise UntranslatableError(f"{path}.content", "content must be a string or a list of parts.")
    texts: list[str] = []
    refusals: list[str] = []
    for i, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("output_text", "input_text", "text"):
            texts.append(_required_str(part, "text", f"{path}.content[{i}]"))
        elif kind == "refusal":
            refusals.append(_required_str(part, "refusal", f"{path}.content[{i}]"))
        else:
            raise UntranslatableError(
                f"{path}.content[{i}].type",
                f"Assistant messages take output_text and refusal parts, not {kind!r}.",
            )
    message: JsonDict = {"role": "assistant", "content": "".join(texts) if texts else None}
    if refusals:
        message["refusal"] = "".join(refusals)
    return message


def _append_function_call(messages: list[JsonDict], item: JsonDict, path: str) -> None:
    call = {
        "id": _required_str(item, "call_id", path),
        "type": "function",
        "function": {
            "name": flat_name(item.get("namespace"), _required_str(item, "name", path)),
            "arguments": _required_str(item, "arguments", path),
        },
    }
    last = messages[-1] if messages else None
    # Consecutive calls (and calls right after the assistant's text) are one assistant turn in chat.
    if last is not None and last["role"] == "assistant":
        last.setdefault("tool_calls", []).append(call)
        return
    messages.append({"role": "assistant", "content": None, "tool_calls": [call]})


def _tool_output(output: Any, path: str) -> str | list[JsonDict]:
    if isinstance(output, str):
        return output
    if not isinstance(output, list):
        raise UntranslatableError(path, "output must be a string or a list of input_text parts.")
    parts: list[JsonDict] = []
    for i, part in enumerate(output):
        if not isinstance(part, dict) or part.get("type") not in ("input_text", "output_text"):
            raise UntranslatableError(
                f"{path}[{i}].type", "Chat tool results take text parts only."
            )
        parts.append({"type": "text", "text": _required_str(part, "text", f"{path}[{i}]")})
    return parts
