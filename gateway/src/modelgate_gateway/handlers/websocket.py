"""GET /v1/responses with ``Upgrade: websocket``: the Responses API's WebSocket mode.

The handshake is checked like any request (the same keys and errors, as a plain HTTP answer
before the upgrade); a gateway with the mode off answers 426, so agent clients fall back to HTTP
at once. Then every ``response.create`` frame is a turn (:mod:`.websocket_turns`), in its
``stream_id`` lane: a lane's turns run one after the other, lanes side by side.

Limits (``spec.websocket``): frame size (aiohttp closes with 1009), turns running or queued per
socket (one more gets an ``error`` event), idle time (closed with 1000), sockets per key (429 at the
handshake), the socket's lifetime (then as on SIGTERM: no new turn, 1001 once its turns ended). A
slow client holds no unbounded memory: a frame write waits for the socket to drain, which holds
the upstream read. SIGTERM: see :mod:`..server.sockets`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import orjson
from aiohttp import WSCloseCode, WSMsgType, web

from ..appkeys import STATE
from ..appstate import GatewayState
from ..config import WebSocketMode
from ..errors import GatewayError, InvalidRequest, ShuttingDown
from ..observability.recording import RequestRecord
from .endpoint import authenticate, error_response, new_record, not_found
from .websocket_memory import SocketMemory
from .websocket_turns import Lane, TurnContext, error_event, run_turn

log = logging.getLogger("modelgate.gateway.websocket")

_MAX_STREAM_ID_CHARS = 256


class UpgradeRequired(GatewayError):
    status = 426
    type = "invalid_request_error"
    code = "websocket_mode_disabled"


class TooManySockets(GatewayError):
    status = 429
    type = "rate_limit_error"
    code = "too_many_websockets"


class SocketExpired(GatewayError):
    """A turn sent after the socket's lifetime: OpenAI's error for it, which makes clients reconnect."""

    status = 400
    type = "invalid_request_error"
    code = "websocket_connection_limit_reached"


async def responses_socket(request: web.Request) -> web.StreamResponse:
    """GET /v1/responses: a WebSocket handshake; any other GET there is an unknown URL, as before."""
    if request.headers.get("Upgrade", "").lower() != "websocket":
        return await not_found(request)
    state = request.app[STATE]
    record = new_record(request, "websocket")
    state.observer.request_started(record)
    reported = False
    try:
        session = _admit(request, state, record)
        ws = web.WebSocketResponse(
            max_msg_size=session.settings.max_frame_bytes, autoping=True, protocols=(), compress=False
        )
        if not ws.can_prepare(request).ok:
            state.sockets.remove(session)
            raise InvalidRequest("Invalid WebSocket handshake (Connection, Sec-WebSocket-Key or -Version).")
        try:
            await ws.prepare(request)
            record.status = 101
            record.finished_at = time.monotonic()
            state.observer.request_finished(record)  # the handshake; each turn is a record of its own
            reported = True
            await session.serve(ws)
        finally:
            state.sockets.remove(session)
        return ws
    except GatewayError as err:
        return error_response(err, record)
    finally:
        if not reported:
            record.finished_at = time.monotonic()
            asyncio.get_running_loop().call_soon(state.observer.request_finished, record)


def _admit(request: web.Request, state: GatewayState, record: RequestRecord) -> Session:
    """Authenticate the handshake and count the socket; raises the HTTP error to answer instead."""
    runtime = state.current()
    settings = runtime.websocket
    if not settings.enabled:
        raise UpgradeRequired("WebSocket mode is not enabled on this gateway; use HTTP (POST /v1/responses).")
    if state.draining or state.sockets.draining:
        raise ShuttingDown("The gateway is shutting down; connect again (another replica will answer).")
    key = authenticate(request, runtime, record)
    session = Session(key.name if key is not None else "", settings)
    session.context = TurnContext(state, None, key, request.headers, SocketMemory(settings.max_state_bytes))
    if not state.sockets.admit(session, settings.max_sockets_per_key):
        raise TooManySockets(
            f"Too many open WebSockets for this API key (limit {settings.max_sockets_per_key}); close one first."
        )
    return session


class Session:
    """One client socket: its lanes, its turn count, its memory; closed by idleness, the client or the drain."""

    __slots__ = (
        "_closing",
        "_draining",
        "_expired",
        "active_at",
        "context",
        "key_name",
        "lanes",
        "settings",
        "turns",
        "ws",
    )

    def __init__(self, key_name: str, settings: WebSocketMode) -> None:
        self.key_name = key_name
        self.settings = settings
        self.lanes: dict[str, Lane] = {}
        self.turns = 0
        """Turns running or queued, over all lanes."""
        self.active_at = 0.0
        """Loop time of the last frame or the end of the last turn (the idle timeout counts from it)."""
        self.ws: web.WebSocketResponse | None = None
        self.context: TurnContext | None = None
        self._draining = False
        self._expired = False
        """The socket's lifetime is over: no new turn, closed (1001) once its turns ended."""
        self._closing: asyncio.Task[bool] | None = None

    async def serve(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws
        assert self.context is not None
        self.context.ws = ws
        lifetime = asyncio.get_running_loop().call_later(self.settings.max_socket_seconds, self._expire)
        try:
            await self._read(ws)
        finally:
            lifetime.cancel()
            await self._end()

    async def _read(self, ws: web.WebSocketResponse) -> None:
        idle = self.settings.idle_timeout_seconds
        loop = asyncio.get_running_loop()
        self.active_at = loop.time()
        while True:  # bounded by the client, the idle timeout and the drain
            # Idle means no frame and no turn: pings (which aiohttp answers inside receive) do not count,
            # or an SDK client pinging every 20 s would hold a socket it no longer uses for ever.
            try:
                async with asyncio.timeout_at(self.active_at + idle if not self.turns else loop.time() + idle):
                    msg = await ws.receive()
            except TimeoutError:
                if self.turns or loop.time() < self.active_at + idle:
                    continue  # busy, or a turn ended since: not idle
                await ws.close(code=WSCloseCode.OK, message=b"idle timeout")
                return
            self.active_at = loop.time()
            if msg.type is WSMsgType.TEXT:
                await self._frame(ws, msg.data)
            elif msg.type is WSMsgType.BINARY:
                await self._refuse(ws, InvalidRequest("Frames must be JSON text."), None)
            else:  # CLOSE, CLOSING, CLOSED, ERROR (a frame over the size limit: aiohttp closed with 1009)
                return

    async def _frame(self, ws: web.WebSocketResponse, text: str) -> None:
        try:
            frame = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            await self._refuse(ws, InvalidRequest(f"We could not parse the JSON of your event: {exc}."), None)
            return
        if not isinstance(frame, dict):
            await self._refuse(ws, InvalidRequest("An event must be a JSON object."), None)
            return
        stream_id = frame.get("stream_id")
        if stream_id is not None and (not isinstance(stream_id, str) or len(stream_id) > _MAX_STREAM_ID_CHARS):
            await self._refuse(ws, InvalidRequest("'stream_id' must be a string.", param="stream_id"), None)
            return
        if frame.get("type") != "response.create":
            kind = str(frame.get("type"))[:64]
            message = f"Unsupported event type '{kind}'; this gateway accepts response.create."
            await self._refuse(ws, InvalidRequest(message, param="type", code="unsupported_event_type"), stream_id)
            return
        if self._draining:
            await self._refuse(ws, ShuttingDown("The gateway is shutting down; reconnect and retry."), stream_id)
            return
        if self._expired:
            limit = self.settings.max_socket_seconds
            message = f"This socket reached its maximum lifetime ({limit:g} seconds); open a new one and continue."
            await self._refuse(ws, SocketExpired(message), stream_id)
            return
        if self.turns >= self.settings.max_turns_in_flight:
            message = f"Too many turns in flight on this socket (limit {self.settings.max_turns_in_flight})."
            await self._refuse(ws, InvalidRequest(message, code="too_many_turns", status=429), stream_id)
            return
        lane = self._lane(stream_id or "")
        self.turns += 1
        lane.queue.append(frame)
        if lane.worker is None:
            lane.worker = asyncio.create_task(self._work(lane), name="modelgate-websocket-lane")

    def _lane(self, name: str) -> Lane:
        lane = self.lanes.get(name)
        if lane is None:
            if len(self.lanes) >= self.settings.max_turns_in_flight:  # bounded: drop an idle lane (and its socket)
                for old_name, old in list(self.lanes.items()):
                    if old.worker is None:
                        del self.lanes[old_name]
                        old.socket.abort()  # idle: nothing is lost but the upstream's memory of the lane
                        break
            assert self.context is not None
            lane = self.lanes[name] = Lane(self.context.state, name)
        return lane

    async def _work(self, lane: Lane) -> None:
        """Run a lane's turns in order until its queue is empty (FIFO, as the API does)."""
        assert self.context is not None
        try:
            while lane.queue:
                frame = lane.queue.pop(0)
                try:
                    if self._draining:  # queued before the drain began: not started, so refused
                        refusal = ShuttingDown("The gateway is shutting down; reconnect and retry.")
                        assert self.ws is not None
                        await self._refuse(self.ws, refusal, frame.get("stream_id"))
                    else:
                        await run_turn(self.context, lane, frame)
                finally:
                    self.turns -= 1
                    self.active_at = asyncio.get_running_loop().time()
        finally:
            lane.worker = None
            if (self._draining or self._expired) and not self.turns:
                self._close_soon()

    async def _refuse(self, ws: web.WebSocketResponse, err: GatewayError, stream_id: Any) -> None:
        with contextlib.suppress(Exception):  # the client is gone: nobody reads the error
            await ws.send_frame(error_event(err, stream_id if isinstance(stream_id, str) else None), WSMsgType.TEXT)

    def drain(self) -> None:
        self._draining = True
        if not self.turns:
            self._close_soon()

    def _expire(self) -> None:
        self._expired = True
        if not self.turns:
            self._close_soon()

    def _close_soon(self) -> None:
        ws = self.ws
        if ws is not None and not ws.closed and self._closing is None:
            reason = b"server shutting down" if self._draining else b"socket lifetime reached"
            closing = ws.close(code=WSCloseCode.GOING_AWAY, message=reason)
            self._closing = asyncio.get_running_loop().create_task(closing)

    async def _end(self) -> None:
        """The client left (or the socket closed): stop its turns and close its upstream sockets."""
        workers = [lane.worker for lane in self.lanes.values() if lane.worker is not None]
        for worker in workers:
            worker.cancel()
        for worker in workers:
            with contextlib.suppress(asyncio.CancelledError):
                await worker
        lanes = list(self.lanes.values())
        self.lanes.clear()
        for lane in lanes:
            lane.queue.clear()
        try:  # close the upstream sockets properly (each bounded by its close timeout)
            await asyncio.gather(*(lane.socket.aclose() for lane in lanes))
        finally:  # the handler is cancelled once the client's connection is gone: drop what is left at once
            for lane in lanes:
                lane.socket.abort()
