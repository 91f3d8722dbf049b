"""The ``mock`` provider: an in-process Responses upstream with canned, streamed text.

It makes the quickstart work offline and gives load tests a zero-cost upstream. It answers like
OpenAI would (the full event sequence, usage, stored responses for retrieve / delete /
input_items) so everything downstream of the transport is exercised for real.
"""

from __future__ import annotations

import asyncio
import base64
import os
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import orjson

from ..runtime import DeploymentRuntime
from ..state.conversations import MemoryConversations
from . import conversations_api
from .transport import NOT_STREAMABLE, MemoryReply, input_items_page, json_error

_MAX_STORED = 1000  # responses kept for retrieve; oldest evicted first
_CONVERSATION_TTL = 86400  # in process: bounded by count (state.conversations), the TTL is not used


def _frame(event: dict[str, Any]) -> bytes:
    return b"event: " + str(event["type"]).encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"


def _input_tokens(payload: Mapping[str, Any]) -> int:
    # About four characters per token, the usual rule of thumb for English text.
    return max(1, len(orjson.dumps(payload.get("input", ""))) // 4 + len(str(payload.get("instructions") or "")) // 4)


class MockTransport:
    def __init__(self) -> None:
        self._stored: OrderedDict[str, tuple[dict[str, Any], list[Any]]] = OrderedDict()
        self._conversations = MemoryConversations()

    def _response(self, dep: DeploymentRuntime, payload: Mapping[str, Any], rid: str, text: str) -> dict[str, Any]:
        words = text.split(" ")
        return {
            "id": rid,
            "object": "response",
            "created_at": int(time.time()),
            "status": "completed",
            "error": None,
            "incomplete_details": None,
            "instructions": payload.get("instructions"),
            "max_output_tokens": payload.get("max_output_tokens"),
            "model": dep.model,
            "output": [
                {
                    "id": "msg_" + rid[5:],
                    "type": "message",
                    "status": "completed",
                    "role": "assistant",
                    "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}],
                }
            ],
            "parallel_tool_calls": payload.get("parallel_tool_calls", True),
            "previous_response_id": payload.get("previous_response_id"),
            "temperature": payload.get("temperature", 1.0),
            "tool_choice": payload.get("tool_choice", "auto"),
            "tools": payload.get("tools", []),
            "top_p": payload.get("top_p", 1.0),
            "metadata": payload.get("metadata") or {},
            "user": payload.get("user"),
            "conversation": {"id": cid} if (cid := conversations_api.conversation_id(payload)) else None,
            "usage": {
                "input_tokens": _input_tokens(payload),
                "input_tokens_details": {"cached_tokens": 0},
                "output_tokens": len(words),
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": _input_tokens(payload) + len(words),
            },
        }

    def _store(self, rid: str, response: dict[str, Any], payload: Mapping[str, Any]) -> None:
        if payload.get("store") is False:
            return
        raw_input = payload.get("input", "")
        items = (
            raw_input
            if isinstance(raw_input, list)
            else [
                {
                    "id": "msg_in_" + rid[5:],
                    "type": "message",
                    "role": "user",
                    "status": "completed",
                    "content": [{"type": "input_text", "text": raw_input}],
                }
            ]
        )
        self._stored[rid] = (response, items)
        while len(self._stored) > _MAX_STORED:
            self._stored.popitem(last=False)

    async def open(
        self,
        dep: DeploymentRuntime,
        method: str,
        path: str,
        *,
        payload: dict[str, Any] | None,
        raw: bytes | None,
        query: Mapping[str, str] | None,
        request_id: str,
        headers: Sequence[tuple[str, str]] = (),
    ) -> MemoryReply:
        if path.startswith("/conversations"):
            return await conversations_api.serve(
                self._conversations, _CONVERSATION_TTL, method, path, payload, query or {}
            )
        if method == "POST" and path == "/responses" and payload is not None:
            await conversations_api.history(self._conversations, payload)  # 400 for an unknown conversation
            previous = payload.get("previous_response_id")
            if previous is not None and str(previous) not in self._stored:  # as OpenAI: nothing to continue
                return json_error(
                    400,
                    f"Previous response with id '{previous}' not found.",
                    "previous_response_not_found",
                    "previous_response_id",
                )
            rid = "resp_mock" + os.urandom(12).hex()
            response = self._response(dep, payload, rid, dep.mock_text)
            self._store(rid, response, payload)
            await conversations_api.record_turn(self._conversations, payload, response, _CONVERSATION_TTL)
            if payload.get("stream") is True:
                return MemoryReply(200, frames=self._stream(dep, response))
            if dep.mock_first_delay:
                await asyncio.sleep(dep.mock_first_delay)
            return MemoryReply(200, orjson.dumps(response))
        if method == "POST" and path in ("/responses/input_tokens", "/responses/compact") and payload is not None:
            earlier = await conversations_api.history(self._conversations, payload) or []
            return self._derived(path, payload, earlier)
        return self._follow_up(method, path, query or {})

    def _conversation(self, payload: Mapping[str, Any]) -> list[Any] | None:
        """The items up to ``previous_response_id`` then the request's input; None: unknown previous."""
        raw_input = payload.get("input") or []
        items = (
            raw_input
            if isinstance(raw_input, list)
            else [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": str(raw_input)}]}]
        )
        previous = payload.get("previous_response_id")
        if previous is None:
            return items
        stored = self._stored.get(str(previous))
        if stored is None:
            return None
        response, earlier = stored
        return [*earlier, *response["output"], *items]

    def _derived(self, path: str, payload: Mapping[str, Any], earlier: list[Any]) -> MemoryReply:
        items = self._conversation(payload)
        if items is None:
            return json_error(
                400, "Previous response not found.", "previous_response_not_found", "previous_response_id"
            )
        items = [*earlier, *items]
        tokens = _input_tokens({"input": items, "instructions": payload.get("instructions")})
        if path.endswith("input_tokens"):
            return MemoryReply(200, orjson.dumps({"object": "response.input_tokens", "input_tokens": tokens}))
        # Compaction keeps the user's messages and replaces everything else by one opaque item.
        kept = [item for item in items if isinstance(item, dict) and item.get("role") == "user"]
        summary = {
            "type": "compaction",
            "id": "cmp_" + os.urandom(12).hex(),
            "encrypted_content": "mock:" + base64.b64encode(orjson.dumps(len(items))).decode(),
        }
        body = {
            "id": "resp_mockcmp" + os.urandom(12).hex(),
            "object": "response.compaction",
            "created_at": int(time.time()),
            "output": [*kept, summary],
            "usage": {
                "input_tokens": tokens,
                "input_tokens_details": {"cached_tokens": 0},
                "output_tokens": 1,
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": tokens + 1,
            },
        }
        return MemoryReply(200, orjson.dumps(body))

    def _follow_up(self, method: str, path: str, query: Mapping[str, str]) -> MemoryReply:
        parts = path.strip("/").split("/")
        stored = self._stored.get(parts[1]) if len(parts) >= 2 else None
        if stored is None:
            return json_error(404, "No response found with that id.", "not_found")
        response, items = stored
        if method == "GET" and len(parts) == 2 and query.get("stream") == "true":
            return json_error(400, NOT_STREAMABLE, param="stream")
        if method == "GET" and len(parts) == 2:
            return MemoryReply(200, orjson.dumps(response))
        if method == "DELETE" and len(parts) == 2:
            del self._stored[parts[1]]
            return MemoryReply(200, orjson.dumps({"id": parts[1], "object": "response", "deleted": True}))
        if method == "GET" and parts[2:] == ["input_items"]:
            return MemoryReply(200, orjson.dumps(input_items_page(items, query)))
        if method == "POST" and parts[2:] == ["cancel"]:
            return json_error(400, "Only responses created with background=true can be cancelled.")
        return json_error(404, "Unknown mock endpoint.", "not_found")

    async def _stream(self, dep: DeploymentRuntime, final: dict[str, Any]) -> AsyncIterator[bytes]:
        start = {**final, "status": "in_progress", "output": [], "usage": None}
        message = final["output"][0]
        item_id = message["id"]
        seq = 0

        def ev(kind: str, **fields: Any) -> bytes:
            nonlocal seq
            frame = _frame({"type": kind, "sequence_number": seq, **fields})
            seq += 1
            return frame

        yield ev("response.created", response=start) + ev("response.in_progress", response=start)
        if dep.mock_first_delay:
            await asyncio.sleep(dep.mock_first_delay)
        empty_item = {**message, "status": "in_progress", "content": []}
        part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
        yield ev("response.output_item.added", output_index=0, item=empty_item) + ev(
            "response.content_part.added", item_id=item_id, output_index=0, content_index=0, part=part
        )
        words = message["content"][0]["text"].split(" ")
        for index, word in enumerate(words):
            if dep.mock_token_delay and index:
                await asyncio.sleep(dep.mock_token_delay)
            delta = word if index == 0 else " " + word
            yield ev(
                "response.output_text.delta", item_id=item_id, output_index=0, content_index=0, delta=delta, logprobs=[]
            )
        text = message["content"][0]["text"]
        yield (
            ev("response.output_text.done", item_id=item_id, output_index=0, content_index=0, text=text, logprobs=[])
            + ev(
                "response.content_part.done",
                item_id=item_id,
                output_index=0,
                content_index=0,
                part={**part, "text": text},
            )
            + ev("response.output_item.done", output_index=0, item=message)
            + ev("response.completed", response=final)
        )
