"""A fake OpenAI Responses upstream over a real socket, faithful to the real event stream.

Each create request consumes the next scripted :class:`Behaviour` (default: answer normally):
HTTP errors with headers (500, 429 + Retry-After), hangs, slow tokens, a stream that stalls
or drops the connection mid-way. It stores responses for retrieve / delete / cancel /
input_items and records every request it saw, so tests can assert on what the gateway sent.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web
from aiohttp.test_utils import TestServer
from multidict import CIMultiDict


@dataclass
class Behaviour:
    status: int = 200
    error_body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    hang: bool = False
    """Never answer (until the gateway gives up and disconnects)."""
    token_delay: float = 0.0
    drop_after_deltas: int | None = None
    """Close the connection after this many text deltas (mid-stream upstream failure)."""
    stall_after_deltas: int | None = None
    resume: asyncio.Event | None = None
    """Where a stall (``stall_after_deltas``) ends: when this is set (never, without one)."""
    omit_usage: bool = False
    text: str | None = None
    service_tier: str | None = None
    """The tier the answer says served it (``service_tier`` in the response)."""
    cache_write_tokens: int = 0
    tool_items: list[dict[str, Any]] = field(default_factory=list)
    """Output items before the message, e.g. ``{"type": "web_search_call", ...}``, streamed as items too."""


@dataclass
class Seen:
    method: str
    path: str
    headers: CIMultiDict[str]
    """Case-insensitive, as HTTP headers are."""
    body: dict[str, Any] | None
    query: dict[str, str]
    query_pairs: list[tuple[str, str]] = field(default_factory=list)
    """Every query parameter in order, repeated names included."""


_ids = itertools.count(1)


class FakeResponsesUpstream:
    def __init__(self, name: str = "fake", text: str = "Hello there, this is a fake upstream answer.") -> None:
        self.name = name
        self.text = text
        self.script: list[Behaviour] = []
        self.seen: list[Seen] = []
        self.stored: dict[str, dict[str, Any]] = {}
        self.inputs: dict[str, list[dict[str, Any]]] = {}
        self.running: dict[str, dict[str, Any]] = {}
        """Background responses still running: their final form, revealed by :meth:`complete`."""
        self.cancelled = asyncio.Event()
        """Set when a request was abandoned by the gateway (client disconnect propagated)."""
        self.cancelled_at: float | None = None
        self.server: TestServer | None = None
        self.conversations: dict[str, dict[str, Any]] = {}
        self.conversation_items: dict[str, list[dict[str, Any]]] = {}

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/v1/responses", self._create)
        app.router.add_post("/v1/responses/input_tokens", self._input_tokens)
        app.router.add_post("/v1/responses/compact", self._compact)
        app.router.add_post("/v1/conversations", self._conversation_create)
        app.router.add_route("*", "/v1/conversations/{cid}", self._conversation_route)
        app.router.add_route("*", "/v1/conversations/{cid}/items", self._conversation_items)
        app.router.add_route("*", "/v1/conversations/{cid}/items/{iid}", self._conversation_item)
        app.router.add_get("/v1/responses/{rid}", self._retrieve)
        app.router.add_delete("/v1/responses/{rid}", self._delete)
        app.router.add_post("/v1/responses/{rid}/cancel", self._cancel)
        app.router.add_get("/v1/responses/{rid}/input_items", self._input_items)
        self._routes(app)
        self.server = TestServer(app, host="127.0.0.1", handler_cancellation=True)
        await self.server.start_server()
        return self.base_url

    def _routes(self, app: web.Application) -> None:
        """More routes of a subclass (the WebSocket fake's, a model server's /metrics)."""

    @property
    def base_url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.port}/v1"

    async def close(self) -> None:
        if self.server is not None:
            await self.server.close()

    @property
    def creates(self) -> list[Seen]:
        return [s for s in self.seen if s.method == "POST" and s.path == "/v1/responses"]

    # -- helpers ---------------------------------------------------------------------------
    async def _note(self, request: web.Request) -> dict[str, Any] | None:
        body = await request.read()
        parsed = orjson.loads(body) if body else None
        self.seen.append(
            Seen(
                request.method,
                request.path,
                CIMultiDict(request.headers),
                parsed,
                dict(request.query),
                list(request.query.items()),
            )
        )
        return parsed

    def _response(
        self, body: dict[str, Any], text: str, omit_usage: bool, behaviour: Behaviour | None = None
    ) -> dict[str, Any]:
        behaviour = behaviour or Behaviour()
        rid = f"resp_{self.name}{next(_ids):06d}"
        words = text.split(" ")
        details: dict[str, int] = {"cached_tokens": 5}
        if behaviour.cache_write_tokens:
            details["cache_write_tokens"] = behaviour.cache_write_tokens
        usage = (
            None
            if omit_usage
            else {
                "input_tokens": 20,
                "input_tokens_details": details,
                "output_tokens": len(words),
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": 20 + len(words),
            }
        )
        return {
            "id": rid,
            "object": "response",
            "created_at": int(time.time()),
            "status": "completed",
            "background": body.get("background", False),
            "error": None,
            "incomplete_details": None,
            "instructions": body.get("instructions"),
            "max_output_tokens": body.get("max_output_tokens"),
            "model": body.get("model"),
            "output": [
                *self._compaction(body),
                *behaviour.tool_items,
                {
                    "id": "msg_" + rid[5:],
                    "type": "message",
                    "status": "completed",
                    "role": "assistant",
                    "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}],
                },
            ],
            "service_tier": behaviour.service_tier or body.get("service_tier") or "default",
            "parallel_tool_calls": True,
            "previous_response_id": body.get("previous_response_id"),
            "temperature": body.get("temperature", 1.0),
            "tool_choice": body.get("tool_choice", "auto"),
            "tools": body.get("tools", []),
            "top_p": body.get("top_p", 1.0),
            "metadata": body.get("metadata") or {},
            "user": body.get("user"),
            "usage": usage,
        }

    @staticmethod
    def _compaction(body: dict[str, Any]) -> list[dict[str, Any]]:
        """As OpenAI's server-side compaction: past ``compact_threshold`` tokens (the fake counts 20
        input tokens) the output starts with an encrypted compaction item."""
        for entry in body.get("context_management") or []:
            if entry.get("type") == "compaction" and entry.get("compact_threshold", 0) < 20:
                return [{"type": "compaction", "id": f"cmp_{next(_ids):06d}", "encrypted_content": "gAAAA-opaque"}]
        return []

    # -- endpoints -------------------------------------------------------------------------
    async def _create(self, request: web.Request) -> web.StreamResponse:
        body = await self._note(request) or {}
        behaviour = self.script.pop(0) if self.script else Behaviour()
        try:
            if behaviour.hang:
                await asyncio.Event().wait()
            if behaviour.status >= 400:
                error = behaviour.error_body or {
                    "error": {
                        "message": f"fake {behaviour.status}",
                        "type": "server_error",
                        "param": None,
                        "code": None,
                    }
                }
                return web.json_response(error, status=behaviour.status, headers=behaviour.headers)
            response = self._response(body, behaviour.text or self.text, behaviour.omit_usage, behaviour)
            conversation = body.get("conversation")
            cid = conversation.get("id") if isinstance(conversation, dict) else conversation
            if cid is not None:
                if cid not in self.conversations:
                    return web.json_response(
                        {
                            "error": {
                                "message": "Conversation not found.",
                                "type": "invalid_request_error",
                                "param": "conversation",
                                "code": None,
                            }
                        },
                        status=400,
                    )
                raw = body.get("input")
                turn = raw if isinstance(raw, list) else [{"role": "user", "content": str(raw)}]
                self.conversation_items[cid].extend([*self._items_with_ids(turn), *response["output"]])
                response["conversation"] = {"id": cid}
            if body.get("store", True):
                self.stored[response["id"]] = response
                raw_input = body.get("input")
                self.inputs[response["id"]] = (
                    raw_input
                    if isinstance(raw_input, list)
                    else [
                        {
                            "id": "msg_in" + response["id"][5:],
                            "type": "message",
                            "role": "user",
                            "status": "completed",
                            "content": [{"type": "input_text", "text": str(raw_input)}],
                        }
                    ]
                )
            if body.get("background") and not body.get("stream"):
                return web.json_response(self._start_background(response))
            if body.get("stream"):
                return await self._stream(request, response, behaviour)
            return web.json_response(response)
        except asyncio.CancelledError:
            self.cancelled_at = time.monotonic()
            self.cancelled.set()
            raise

    async def _stream(
        self, request: web.Request, final: dict[str, Any], behaviour: Behaviour, starting_after: int = -1
    ) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        deltas = 0
        stall = behaviour.stall_after_deltas
        for event in event_sequence(final):
            if event["type"] == "response.output_text.delta":
                if behaviour.drop_after_deltas is not None and deltas >= behaviour.drop_after_deltas:
                    assert request.transport is not None
                    request.transport.close()
                    return resp
                if stall is not None and deltas >= stall:
                    await (behaviour.resume or asyncio.Event()).wait()
                    stall = None
                if behaviour.token_delay:
                    await asyncio.sleep(behaviour.token_delay)
                deltas += 1
            if event["sequence_number"] > starting_after:  # a resumed stream starts after the cursor
                await resp.write(f"event: {event['type']}\ndata: ".encode() + orjson.dumps(event) + b"\n\n")
        return resp

    def _start_background(self, final: dict[str, Any]) -> dict[str, Any]:
        """As OpenAI: a background create answers at once with a queued response without usage."""
        queued = {**final, "status": "queued", "output": [], "usage": None}
        self.stored[final["id"]] = queued
        self.running[final["id"]] = final
        return queued

    def complete(self, rid: str | None = None, status: str = "completed") -> list[str]:
        """Finish running background responses (one, or all): retrieves then show them ended with usage."""
        done = [rid] if rid is not None else list(self.running)
        for key in done:
            final = self.running.pop(key)
            self.stored[key] = {**final, "status": status}
        return done

    def _conversation(self, body: dict[str, Any]) -> list[Any] | web.Response:
        """The stored items up to ``previous_response_id``, then the body's input (as OpenAI counts them)."""
        raw = body.get("input") or []
        items = raw if isinstance(raw, list) else [{"type": "message", "role": "user", "content": str(raw)}]
        conversation = body.get("conversation")
        cid = conversation.get("id") if isinstance(conversation, dict) else conversation
        if cid is not None:
            items = [*self.conversation_items.get(cid, []), *items]
        previous = body.get("previous_response_id")
        if previous is None:
            return items
        found = self._stored_or_404(previous)
        if isinstance(found, web.Response):
            return found
        return [*self.inputs.get(previous, []), *found["output"], *items]

    async def _input_tokens(self, request: web.Request) -> web.Response:
        """Ten tokens per item (a fake's count, easy to assert)."""
        items = self._conversation(await self._note(request) or {})
        if isinstance(items, web.Response):
            return items
        return web.json_response({"object": "response.input_tokens", "input_tokens": 10 * len(items)})

    async def _compact(self, request: web.Request) -> web.Response:
        items = self._conversation(await self._note(request) or {})
        if isinstance(items, web.Response):
            return items
        kept = [item for item in items if isinstance(item, dict) and item.get("role") == "user"]
        return web.json_response(
            {
                "id": f"resp_{self.name}cmp{next(_ids):06d}",
                "object": "response.compaction",
                "created_at": 0,
                "output": [*kept, {"type": "compaction", "id": f"cmp_{self.name}", "encrypted_content": "gAAAAB-fake"}],
                "usage": {
                    "input_tokens": 10 * len(items),
                    "input_tokens_details": {"cached_tokens": 0},
                    "output_tokens": 7,
                    "output_tokens_details": {"reasoning_tokens": 0},
                    "total_tokens": 10 * len(items) + 7,
                },
            }
        )

    # -- conversations (OpenAI's shapes; items get ids, newest last) --------------------------
    def _items_with_ids(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Items as OpenAI stores them: an id, a type, and text content as parts."""
        out = []
        for item in items:
            stored = {"id": f"msg_{self.name}{next(_ids):06d}", "type": "message", **item}
            if isinstance(stored.get("content"), str):
                stored["content"] = [{"type": "input_text", "text": stored["content"]}]
            out.append(stored)
        return out

    async def _conversation_create(self, request: web.Request) -> web.Response:
        body = await self._note(request) or {}
        cid = f"conv_{self.name}{next(_ids):06d}"
        self.conversations[cid] = {
            "id": cid,
            "object": "conversation",
            "created_at": 0,
            "metadata": body.get("metadata") or {},
        }
        self.conversation_items[cid] = self._items_with_ids(body.get("items") or [])
        return web.json_response(self.conversations[cid])

    def _conversation_or_404(self, cid: str) -> dict[str, Any] | web.Response:
        found = self.conversations.get(cid)
        if found is None:
            return web.json_response(
                {
                    "error": {
                        "message": "Conversation not found.",
                        "type": "invalid_request_error",
                        "param": None,
                        "code": None,
                    }
                },
                status=404,
            )
        return found

    async def _conversation_route(self, request: web.Request) -> web.Response:
        body = await self._note(request) or {}
        found = self._conversation_or_404(request.match_info["cid"])
        if isinstance(found, web.Response):
            return found
        if request.method == "POST":
            found["metadata"] = body.get("metadata") or {}
        if request.method == "DELETE":
            del self.conversations[found["id"]]
            return web.json_response({"id": found["id"], "object": "conversation.deleted", "deleted": True})
        return web.json_response(found)

    async def _conversation_items(self, request: web.Request) -> web.Response:
        body = await self._note(request) or {}
        found = self._conversation_or_404(request.match_info["cid"])
        if isinstance(found, web.Response):
            return found
        items = self.conversation_items[found["id"]]
        ordered = list(items) if request.query.get("order") == "asc" else list(reversed(items))
        data = self._items_with_ids(body.get("items") or []) if request.method == "POST" else ordered
        if request.method == "POST":
            items.extend(data)
        return web.json_response(
            {
                "object": "list",
                "data": data,
                "has_more": False,
                "first_id": data[0]["id"] if data else None,
                "last_id": data[-1]["id"] if data else None,
            }
        )

    async def _conversation_item(self, request: web.Request) -> web.Response:
        await self._note(request)
        found = self._conversation_or_404(request.match_info["cid"])
        if isinstance(found, web.Response):
            return found
        items = self.conversation_items[found["id"]]
        item = next((i for i in items if i["id"] == request.match_info["iid"]), None)
        if item is None:
            return web.json_response(
                {"error": {"message": "Item not found.", "type": "invalid_request_error", "param": None, "code": None}},
                status=404,
            )
        if request.method == "DELETE":
            items.remove(item)
            return web.json_response(found)
        return web.json_response(item)

    def _stored_or_404(self, rid: str) -> dict[str, Any] | web.Response:
        found = self.stored.get(rid)
        if found is None:
            return web.json_response(
                {
                    "error": {
                        "message": f"No response found with id '{rid}'.",
                        "type": "invalid_request_error",
                        "param": None,
                        "code": None,
                    }
                },
                status=404,
            )
        return found

    async def _retrieve(self, request: web.Request) -> web.StreamResponse:
        await self._note(request)
        found = self._stored_or_404(request.match_info["rid"])
        if isinstance(found, web.Response):
            return found
        if request.query.get("stream") != "true":
            return web.json_response(found)
        if not found.get("background"):  # as OpenAI: only background responses can be streamed again
            return web.json_response(
                {
                    "error": {
                        "message": "Only background responses can be streamed.",
                        "type": "invalid_request_error",
                        "param": "stream",
                        "code": None,
                    }
                },
                status=400,
            )
        rid = request.match_info["rid"]
        if rid in self.running:  # following a running response streams it to its end
            found = self.running[rid]
            self.complete(rid)
        return await self._stream(request, found, Behaviour(), int(request.query.get("starting_after", "-1")))

    async def _delete(self, request: web.Request) -> web.Response:
        await self._note(request)
        rid = request.match_info["rid"]
        found = self._stored_or_404(rid)
        if isinstance(found, web.Response):
            return found
        del self.stored[rid]
        return web.json_response({"id": rid, "object": "response", "deleted": True})

    async def _cancel(self, request: web.Request) -> web.Response:
        await self._note(request)
        found = self._stored_or_404(request.match_info["rid"])
        if isinstance(found, web.Response):
            return found
        rid = request.match_info["rid"]
        if rid in self.running:  # cancelled mid-way: billed for what it used so far
            final = self.running.pop(rid)
            usage = (
                {
                    **final["usage"],
                    "output_tokens": 2,
                    "output_tokens_details": {"reasoning_tokens": 0},
                    "total_tokens": final["usage"]["input_tokens"] + 2,
                }
                if final["usage"]
                else None
            )
            found = self.stored[rid] = {**final, "status": "cancelled", "output": [], "usage": usage}
        found["status"] = "cancelled"
        return web.json_response(found)

    async def _input_items(self, request: web.Request) -> web.Response:
        await self._note(request)
        rid = request.match_info["rid"]
        found = self._stored_or_404(rid)
        if isinstance(found, web.Response):
            return found
        items = self.inputs.get(rid, [])
        return web.json_response(
            {
                "object": "list",
                "data": items,
                "has_more": False,
                "first_id": items[0].get("id") if items else None,
                "last_id": items[-1].get("id") if items else None,
            }
        )


def event_sequence(final: dict[str, Any]) -> list[dict[str, Any]]:
    """The events of a streamed response, as OpenAI sends them (any tool items first, then the message)."""
    events: list[dict[str, Any]] = []

    def send(kind: str, **fields: Any) -> None:
        events.append({"type": kind, "sequence_number": len(events), **fields})

    message = final["output"][-1]
    item_id = message["id"]
    msg_index = len(final["output"]) - 1
    start = {**final, "status": "in_progress", "output": [], "usage": None}
    send("response.created", response=start)
    send("response.in_progress", response=start)
    for tool_index, item in enumerate(final["output"][:-1]):
        send("response.output_item.added", output_index=tool_index, item={**item, "status": "in_progress"})
        send("response.output_item.done", output_index=tool_index, item=item)
    send("response.output_item.added", output_index=msg_index, item={**message, "status": "in_progress", "content": []})
    part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
    send("response.content_part.added", item_id=item_id, output_index=msg_index, content_index=0, part=part)
    text = message["content"][0]["text"]
    for index, word in enumerate(text.split(" ")):
        delta = word if index == 0 else " " + word
        send(
            "response.output_text.delta",
            item_id=item_id,
            output_index=msg_index,
            content_index=0,
            delta=delta,
            logprobs=[],
        )
    send("response.output_text.done", item_id=item_id, output_index=msg_index, content_index=0, text=text, logprobs=[])
    done_part = {**part, "text": text}
    send("response.content_part.done", item_id=item_id, output_index=msg_index, content_index=0, part=done_part)
    send("response.output_item.done", output_index=msg_index, item=message)
    send("response.completed", response=final)
    return events
