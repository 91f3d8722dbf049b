"""A fake OpenAI upstream that streams one long answer and counts what it handed its socket.

For backpressure tests: over HTTP (SSE on ``POST /v1/responses``) and over the Responses API's
WebSocket mode (``GET /v1/responses``), the events OpenAI sends for an answer of several message
items (as a model with commentary and final phases writes): per item, large text deltas and its
done events; then ``response.completed`` with every item. Every write is awaited (aiohttp waits
for its transport to drain), so when the gateway stops reading, this upstream stalls in a write:
:attr:`handed` stops growing and :attr:`writing` stays set.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import WSMsgType, web

from fake_websocket_upstream import FakeWebSocketUpstream


def flood_texts(items: int, deltas: int, delta_bytes: int) -> list[list[str]]:
    """Each item's deltas: ``deltas`` numbered strings of ``delta_bytes`` characters, so order and loss show."""
    return [[f"{item:03d}{index:06d}".ljust(delta_bytes, "y") for index in range(deltas)] for item in range(items)]


def flood_events(final: dict[str, Any], texts: list[list[str]]) -> list[dict[str, Any]]:
    """The events of a streamed response whose output is one message item per entry of ``texts``."""
    events: list[dict[str, Any]] = []

    def send(kind: str, **fields: Any) -> None:
        events.append({"type": kind, "sequence_number": len(events), **fields})

    start = {**final, "status": "in_progress", "output": [], "usage": None}
    send("response.created", response=start)
    send("response.in_progress", response=start)
    for index, message in enumerate(final["output"]):
        item_id = message["id"]
        send("response.output_item.added", output_index=index, item={**message, "status": "in_progress", "content": []})
        part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
        send("response.content_part.added", item_id=item_id, output_index=index, content_index=0, part=part)
        where = {"item_id": item_id, "output_index": index, "content_index": 0}
        for delta in texts[index]:
            send("response.output_text.delta", **where, delta=delta, logprobs=[])
        text = message["content"][0]["text"]
        send("response.output_text.done", **where, text=text, logprobs=[])
        send("response.content_part.done", **where, part={**part, "text": text})
        send("response.output_item.done", output_index=index, item=message)
    send("response.completed", response=final)
    return events


class FloodingUpstream(FakeWebSocketUpstream):
    def __init__(self, texts: list[list[str]]) -> None:
        super().__init__("flood")
        self.texts = texts
        self.handed = 0
        """Bytes of events handed to the socket's transport so far (SSE framing, or WebSocket payloads)."""
        self.total = 0
        """Bytes of the whole stream (known once it started)."""
        self.largest = 0
        """Size of the largest event handed so far."""
        self.writing = False
        """True while a write waits for the transport to drain."""
        self.finished = False
        self.transport: Any = None
        """The transport of the stream's connection (what it still buffers is not yet in the kernel)."""

    def _events(self, frame: dict[str, Any], sse: bool) -> list[bytes]:
        final = self._response(frame, "", omit_usage=False)
        message = final["output"][-1]
        final["output"] = [
            {**message, "id": f"{message['id']}_{index}", "content": [{**message["content"][0], "text": "".join(text)}]}
            for index, text in enumerate(self.texts)
        ]
        events = flood_events(final, self.texts)
        if sse:
            encoded = [b"event: %s\ndata: %s\n\n" % (e["type"].encode(), orjson.dumps(e)) for e in events]
        else:
            encoded = [orjson.dumps(event) for event in events]
        self.total = sum(map(len, encoded))
        return encoded

    async def _create(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.transport = request.transport
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for data in self._events(body, sse=True):
            self.handed += len(data)  # in the transport's buffer from now on
            self.largest = max(self.largest, len(data))
            self.writing = True
            await resp.write(data)
            self.writing = False
        self.finished = True
        return resp

    async def _socket(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.transport = request.transport
        async for msg in ws:
            if msg.type is not WSMsgType.TEXT:
                break
            for data in self._events(orjson.loads(msg.data), sse=False):
                self.handed += len(data)
                self.largest = max(self.largest, len(data))
                self.writing = True
                await ws.send_frame(data, WSMsgType.TEXT)
                self.writing = False
            self.finished = True
        return ws
