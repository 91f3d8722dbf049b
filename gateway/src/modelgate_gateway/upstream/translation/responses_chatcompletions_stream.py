"""Chat Completions chunks -> the Responses server-sent event sequence, one chunk at a time.

:class:`ChatStreamTranslator` turns each parsed ``chat.completion.chunk`` into the SSE frames it
implies right away (no buffering), numbering events from 0. Output items stay open until
:meth:`finish` (or :meth:`fail`), which closes them in output order and ends the stream with
``response.completed`` (``response.incomplete`` when the chat stream stopped on ``length`` or
``content_filter``, as OpenAI does). Pure: the executor owns the sockets.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import orjson

from ...observability.recording import Usage
from ...observability.usage import usage_from_mapping
from .responses_chatcompletions_input import JsonDict
from .responses_chatcompletions_response import (
    delta_logprobs,
    function_call_item,
    map_usage,
    message_item,
    new_item_id,
    output_logprobs,
    response_skeleton,
    status_for,
    text_part,
)
from .responses_chatcompletions_tools import namespaced_names

# ResponseError.code is a closed set in the SDK; anything else is reported as server_error.
_ERROR_CODES = frozenset({"server_error", "rate_limit_exceeded", "invalid_prompt"})


@dataclass(slots=True)
class _Part:
    kind: str  # "output_text" or "refusal"
    content_index: int
    chunks: list[str] = field(default_factory=list)
    logprobs: list[JsonDict] = field(default_factory=list)

    def final(self) -> JsonDict:
        if self.kind == "refusal":
            return {"type": "refusal", "refusal": "".join(self.chunks)}
        return text_part("".join(self.chunks), self.logprobs)


@dataclass(slots=True)
class _Message:
    item_id: str
    output_index: int
    parts: dict[str, _Part] = field(default_factory=dict)
    status: str | None = None  # set once output_item.done went out

    def item(self, status: str) -> JsonDict:
        content = [
            part.final() for part in sorted(self.parts.values(), key=lambda p: p.content_index)
        ]
        return message_item(self.item_id, status, content)


@dataclass(slots=True)
class _Call:
    call_id: str
    name: str
    item_id: str = field(default_factory=lambda: new_item_id("fc"))
    output_index: int = -1  # assigned when the item is announced (needs the function name)
    arguments: list[str] = field(default_factory=list)
    status: str | None = None  # set once output_item.done went out
    namespaces: dict[str, tuple[str, str]] | None = None

    def item(self, status: str) -> JsonDict:
        return function_call_item(
            self.item_id, status, self.call_id, self.name, "".join(self.arguments), self.namespaces
        )


class ChatStreamTranslator:
    """Synthesises the Responses event stream of one response from chat-completions chunks.

    Call :meth:`start` once, :meth:`feed` per chunk, then exactly one of :meth:`finish` (the
    chat stream ended with ``[DONE]``) or :meth:`fail` (it broke). Each returns SSE bytes.
    """

    def __init__(
        self,
        *,
        response_id: str,
        model: str,
        created_at: int,
        request: JsonDict,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._response = response_skeleton(
            response_id=response_id, model=model, created_at=created_at, request=request
        )
        self._clock = clock
        self._namespaces = namespaced_names(request.get("tools")) or None
        self._sequence = 0
        self._items: list[_Message | _Call] = []
        self._message: _Message | None = None
        self._calls: dict[int, _Call] = {}
        self._chat_usage: JsonDict | None = None
        self._finish_reason: str | None = None
        self._started = False
        self._closed = False

    # --- public API -------------------------------------------------------------------------

    @property
    def usage(self) -> Usage | None:
        """Usage from the chat stream's last chunk, or ``None`` if the upstream sent none."""
        return usage_from_mapping(self._chat_usage)

    @property
    def response(self) -> JsonDict:
        """The Responses object as it stands: final after :meth:`finish` or :meth:`fail`."""
        return self._response

    @property
    def output_text(self) -> str:
        return "".join(
            "".join(item.parts["output_text"].chunks)
            for item in self._items
            if isinstance(item, _Message) and "output_text" in item.parts
        )

    @property
    def finish_reason(self) -> str | None:
        """The chat ``finish_reason`` seen so far; ``None`` means the upstream never finished."""
        return self._finish_reason

    @property
    def closed(self) -> bool:
        return self._closed

    def start(self) -> bytes:
        """``response.created`` and ``response.in_progress``."""
        if self._started:
            raise RuntimeError("start() called twice")
        self._started = True
        out = bytearray()
        self._emit(out, "response.created", {"response": self._response})
        self._emit(out, "response.in_progress", {"response": self._response})
        return bytes(out)

    def feed(self, chunk: JsonDict) -> bytes:
        """Frames implied by one parsed ``chat.completion.chunk`` (possibly none)."""
        self._check_open()
        if isinstance(chunk.get("error"), dict) and not chunk.get("choices"):
            # vLLM, llama.cpp and others report mid-stream failures as an error payload.
            error = chunk["error"]
            return self.fail(str(error.get("message") or "upstream error"), error.get("code"))
        if isinstance(chunk.get("usage"), dict):
            self._chat_usage = chunk["usage"]
        out = bytearray()
        for choice in chunk.get("choices") or []:
            if choice.get("index", 0) != 0:
                continue  # the gateway never asks for n > 1
            delta = choice.get("delta") or {}
            if delta.get("content"):
                chat_logprobs = choice.get("logprobs")
                content = chat_logprobs.get("content") if isinstance(chat_logprobs, dict) else None
                logprobs = output_logprobs(content)
                self._text(out, "output_text", delta["content"], logprobs)
            if delta.get("refusal"):
                self._text(out, "refusal", delta["refusal"], [])
            for call in delta.get("tool_calls") or []:
                self._tool_call(out, call)
            if choice.get("finish_reason"):
                self._finish_reason = choice["finish_reason"]
        return bytes(out)

    def finish(self) -> bytes:
        """Close every output item and end with ``response.completed`` / ``.incomplete``."""
        self._check_open()
        out = bytearray()
        for call in self._calls.values():
            if call.output_index < 0:
                self._announce_call(out, call)
        status, incomplete = status_for(self._finish_reason)
        item_status = "completed" if status == "completed" else "incomplete"
        for item in self._items:
            if isinstance(item, _Message) and item.status is None:
                self._close_message(out, item, item_status)
            elif isinstance(item, _Call):
                self._close_call(out, item, item_status)
        self._response.update(
            status=status,
            incomplete_details=incomplete,
            output=[item.item(item.status or item_status) for item in self._items],
            usage=map_usage(self._chat_usage),
            completed_at=int(self._clock()) if status == "completed" else None,
        )
        self._closed = True
        event = "response.completed" if status == "completed" else "response.incomplete"
        self._emit(out, event, {"response": self._response})
        return bytes(out)

    def fail(self, message: str, code: str | None = None) -> bytes:
        """End the stream with ``response.failed`` carrying the error and the partial output."""
        self._check_open()
        self._closed = True
        self._response.update(
            status="failed",
            error={"code": code if code in _ERROR_CODES else "server_error", "message": message},
            output=[item.item(item.status or "incomplete") for item in self._items],
            usage=map_usage(self._chat_usage),
        )
        out = bytearray()
        self._emit(out, "response.failed", {"response": self._response})
        return bytes(out)

    # --- event synthesis --------------------------------------------------------------------

    def _check_open(self) -> None:
        if not self._started:
            raise RuntimeError("start() must come first")
        if self._closed:
            raise RuntimeError("the stream is already finished")

    def _emit(self, out: bytearray, event_type: str, payload: JsonDict) -> None:
        data = orjson.dumps({"type": event_type, **payload, "sequence_number": self._sequence})
        self._sequence += 1
        out += b"event: " + event_type.encode() + b"\ndata: " + data + b"\n\n"

    def _text(self, out: bytearray, kind: str, text: str, logprobs: list[JsonDict]) -> None:
        message = self._message
        if message is None:
            message = self._message = _Message(new_item_id("msg"), len(self._items))
            self._items.append(message)
            self._emit(
                out,
                "response.output_item.added",
                {
                    "output_index": message.output_index,
                    "item": message.item("in_progress"),
                },
            )
        part = message.parts.get(kind)
        if part is None:
            part = message.parts[kind] = _Part(kind, len(message.parts))
            self._emit(
                out,
                "response.content_part.added",
                {
                    "item_id": message.item_id,
                    "output_index": message.output_index,
                    "content_index": part.content_index,
                    "part": part.final(),
                },
            )
        part.chunks.append(text)
        part.logprobs.extend(logprobs)
        event: JsonDict = {
            "item_id": message.item_id,
            "output_index": message.output_index,
            "content_index": part.content_index,
            "delta": text,
        }
        if kind == "output_text":
            event["logprobs"] = delta_logprobs(logprobs)
            self._emit(out, "response.output_text.delta", event)
        else:
            self._emit(out, "response.refusal.delta", event)

    def _tool_call(self, out: bytearray, delta: JsonDict) -> None:
        function = delta.get("function") or {}
        call = self._calls.get(delta.get("index", 0))
        if call is None:
            call = _Call(call_id=delta.get("id") or "", name=function.get("name") or "",
                         namespaces=self._namespaces)
            self._calls[delta.get("index", 0)] = call
        else:
            call.call_id = call.call_id or delta.get("id") or ""
            call.name += function.get("name") or ""
        fragment = function.get("arguments") or ""
        if call.output_index < 0:
            call.arguments.append(fragment)
            if call.name:  # announce as soon as the name is known; earlier fragments follow
                self._announce_call(out, call)
            return
        if fragment:
            call.arguments.append(fragment)
            self._emit_arguments(out, call, fragment)

    def _announce_call(self, out: bytearray, call: _Call) -> None:
        if self._message is not None:
            # Responses streams items one after another: the text before a tool call is done.
            # Text arriving after it (rare) opens a new message item.
            self._close_message(out, self._message, "completed")
            self._message = None
        call.call_id = call.call_id or new_item_id("call")
        call.output_index = len(self._items)
        self._items.append(call)
        pending = "".join(call.arguments)
        call.arguments = [pending]
        item = call.item("in_progress")
        item["arguments"] = ""
        self._emit(
            out, "response.output_item.added", {"output_index": call.output_index, "item": item}
        )
        if pending:
            self._emit_arguments(out, call, pending)

    def _emit_arguments(self, out: bytearray, call: _Call, fragment: str) -> None:
        self._emit(
            out,
            "response.function_call_arguments.delta",
            {
                "item_id": call.item_id,
                "output_index": call.output_index,
                "delta": fragment,
            },
        )

    def _close_message(self, out: bytearray, message: _Message, status: str) -> None:
        message.status = status
        for part in sorted(message.parts.values(), key=lambda p: p.content_index):
            where = {
                "item_id": message.item_id,
                "output_index": message.output_index,
                "content_index": part.content_index,
            }
            if part.kind == "output_text":
                self._emit(
                    out,
                    "response.output_text.done",
                    {
                        **where,
                        "text": "".join(part.chunks),
                        "logprobs": delta_logprobs(part.logprobs),
                    },
                )
            else:
                self._emit(out, "response.refusal.done", {**where, "refusal": "".join(part.chunks)})
            self._emit(out, "response.content_part.done", {**where, "part": part.final()})
        self._emit(
            out,
            "response.output_item.done",
            {
                "output_index": message.output_index,
                "item": message.item(status),
            },
        )

    def _close_call(self, out: bytearray, call: _Call, status: str) -> None:
        call.status = status
        self._emit(
            out,
            "response.function_call_arguments.done",
            {
                "item_id": call.item_id,
                "output_index": call.output_index,
                "name": call.item(status)["name"],
                "arguments": "".join(call.arguments),
            },
        )
        self._emit(
            out,
            "response.output_item.done",
            {
                "output_index": call.output_index,
                "item": call.item(status),
            },
        )
