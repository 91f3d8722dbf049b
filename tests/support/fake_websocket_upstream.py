"""A fake OpenAI upstream that also speaks the Responses API's WebSocket mode (GET /v1/responses).

Like OpenAI: each ``response.create`` frame is a turn streamed back as text frames; the socket
keeps its last response in memory, so a ``store: false`` response can be continued on the same
socket only; an unknown ``previous_response_id`` gets an ``error`` event
(``previous_response_not_found``, status 400). Scripted per turn with the HTTP fake's
:class:`Behaviour` (a status >= 400 becomes an ``error`` event with that status, ``hang`` never
answers). Every turn is recorded in ``seen`` (method ``WS``) with the index of its socket.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from aiohttp import WSMsgType, web
from multidict import CIMultiDict

from fake_responses_upstream import Behaviour, FakeResponsesUpstream, Seen, event_sequence


class FakeWebSocketUpstream(FakeResponsesUpstream):
    def __init__(self, name: str = "ws", text: str = "Hello over a socket from the fake upstream.") -> None:
        super().__init__(name, text)
        self.sockets = 0
        """Sockets the gateway opened (handshakes accepted)."""
        self.turn_sockets: list[int] = []
        """For each turn in ``seen`` order: the index of the socket it came on."""
        self.open_sockets = 0
        self.answered: list[str] = []
        """Ids of the responses answered over sockets, in order."""
        self.refuse_handshake: int | None = None
        """Answer the next handshakes with this HTTP status instead of upgrading."""

    def _routes(self, app: web.Application) -> None:
        app.router.add_get("/v1/responses", self._socket)

    @property
    def turns(self) -> list[Seen]:
        return [s for s in self.seen if s.method == "WS"]

    async def _socket(self, request: web.Request) -> web.StreamResponse:
        if self.refuse_handshake is not None:
            error = {"error": {"message": "refused", "type": "server_error", "param": None, "code": None}}
            return web.json_response(error, status=self.refuse_handshake)
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        index = self.sockets
        self.sockets += 1
        self.open_sockets += 1
        cache: dict[str, dict[str, Any]] = {}  # the socket's last response (any store value)
        try:
            async for msg in ws:
                if msg.type is not WSMsgType.TEXT:
                    break
                frame = orjson.loads(msg.data)
                self.seen.append(Seen("WS", request.path, CIMultiDict(request.headers), frame, {}))
                self.turn_sockets.append(index)
                await self._turn(ws, frame, cache)
        finally:
            self.open_sockets -= 1
        return ws

    async def _turn(self, ws: web.WebSocketResponse, frame: dict[str, Any], cache: dict[str, dict[str, Any]]) -> None:
        behaviour = self.script.pop(0) if self.script else Behaviour()
        if behaviour.hang:
            await asyncio.Event().wait()
        if behaviour.status >= 400:
            error = (behaviour.error_body or {}).get("error") or {
                "message": f"fake {behaviour.status}",
                "type": "server_error",
                "param": None,
                "code": None,
            }
            await ws.send_bytes(orjson.dumps({"type": "error", "status": behaviour.status, "error": error}))
            return
        previous = frame.get("previous_response_id")
        if previous is not None and previous not in cache and previous not in self.stored:
            error = {
                "message": f"Previous response with id '{previous}' not found.",
                "type": "invalid_request_error",
                "param": "previous_response_id",
                "code": "previous_response_not_found",
            }
            await ws.send_str(orjson.dumps({"type": "error", "status": 400, "error": error}).decode())
            return
        final = self._response(frame, behaviour.text or self.text, behaviour.omit_usage, behaviour)
        cache.clear()
        cache[final["id"]] = final
        self.answered.append(final["id"])
        if frame.get("store", True):
            self.stored[final["id"]] = final
        for event in event_sequence(final):
            if behaviour.token_delay and event["type"] == "response.output_text.delta":
                await asyncio.sleep(behaviour.token_delay)
            await ws.send_str(orjson.dumps(event).decode())
