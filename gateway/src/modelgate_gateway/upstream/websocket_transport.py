"""A client WebSocket lane's own socket to an upstream that speaks the Responses API's WebSocket mode.

The gateway holds one upstream socket per client lane, to the deployment the lane is pinned to,
and sends each turn's ``response.create`` over it: the upstream keeps the lane's last response in
its connection-local cache, which is what makes continuing a ``store: false`` response work and
long tool loops fast. To the executor and the relay this is one more :class:`.transport.Transport`:
an upstream ``error`` event as the first event is a failed status (failover, or the client's 4xx
passed on), and the events until the turn's final one are SSE chunks, so ids are rewritten, usage
read and failures reported exactly as on HTTP. ``websockets`` speaks the protocol (upstream calls
never use aiohttp's client).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.protocol import State

from ..runtime import DeploymentRuntime
from .transport import MemoryReply, UpstreamReply

log = logging.getLogger("modelgate.gateway.websocket")

MAX_UPSTREAM_FRAME_BYTES = 16 * 1024 * 1024
"""Largest upstream event (a final event carries the whole response)."""
UPSTREAM_QUEUE_FRAMES = 4
"""Upstream frames read ahead per lane (the library's default, 16, allows 16 x 16 MiB)."""
_FINAL_TYPES = frozenset({"response.completed", "response.failed", "response.incomplete", "error"})
_MARKERS = (b"response.completed", b"response.failed", b"response.incomplete", b'"error"')
_STATUS_OF_CODE = {"previous_response_not_found": 400, "websocket_connection_limit_reached": 400}


def as_sse(frame: bytes) -> bytes:
    """One upstream event frame as one SSE event (the relay's input); a line break only in JSON whitespace."""
    if b"\r" in frame:
        frame = frame.replace(b"\r", b"")
    if b"\n" in frame:
        frame = frame.replace(b"\n", b"\ndata: ")
    return b"data: " + frame + b"\n\n"


def _event_type(frame: bytes) -> str | None:
    """The type of a frame that may end a turn (parsed only then: deltas pass unparsed)."""
    if not any(marker in frame for marker in _MARKERS):
        return None
    try:
        event = orjson.loads(frame)
    except orjson.JSONDecodeError:
        return None
    kind = event.get("type") if isinstance(event, dict) else None
    return kind if isinstance(kind, str) else None


class LaneSocket:
    """A :class:`.transport.Transport` for deployments with ``websocket`` set: one lane's upstream socket.

    At most one socket at a time: a turn served by another deployment replaces it.
    """

    __slots__ = ("_conn", "_dep")

    def __init__(self) -> None:
        self._conn: ClientConnection | None = None
        self._dep: str | None = None

    @property
    def deployment(self) -> str | None:
        """The deployment this lane holds an open socket to (it is pinned there), if any."""
        conn = self._conn
        return self._dep if conn is not None and conn.state is State.OPEN else None

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
    ) -> UpstreamReply:
        frame = {"type": "response.create", **{k: v for k, v in (payload or {}).items() if k != "stream"}}
        try:
            conn = await self._connected(dep, request_id, headers)
        except InvalidStatus as exc:  # the upstream refused the handshake: its status decides (401, 5xx, ...)
            return MemoryReply(exc.response.status_code, bytes(exc.response.body or b""))
        except InvalidHandshake as exc:
            raise ConnectionError(f"WebSocket handshake failed: {type(exc).__name__}") from None
        try:
            await conn.send(orjson.dumps(frame), text=True)
            first = await conn.recv(decode=False)
        except ConnectionClosed:
            self.abort()
            raise ConnectionResetError("the upstream WebSocket closed") from None
        except BaseException:  # the first-byte deadline, or the client left: the socket's state is unknown
            self.abort()
            raise
        if _event_type(first) == "error":
            return self._error_reply(first)
        idle = dep.endpoint.read_idle_seconds if dep.endpoint is not None else 60.0
        return _LaneReply(self, conn, first, idle)

    def _error_reply(self, frame: bytes) -> MemoryReply:
        """An ``error`` event instead of the turn: its status (or a code's usual one) and body, as HTTP would."""
        event = orjson.loads(frame)
        error = event.get("error") if isinstance(event.get("error"), dict) else {"message": "upstream error"}
        status = event.get("status")
        if not isinstance(status, int) or not 400 <= status <= 599:
            status = _STATUS_OF_CODE.get(str(error.get("code")), 500)
        if status >= 500 or status in (401, 403, 429) or error.get("code") == "websocket_connection_limit_reached":
            self.abort()  # failing, refusing, or the upstream socket's lifetime is over: the next turn starts afresh
        return MemoryReply(status, orjson.dumps({"error": error}))

    async def _connected(
        self, dep: DeploymentRuntime, request_id: str, headers: Sequence[tuple[str, str]]
    ) -> ClientConnection:
        conn = self._conn
        if conn is not None and self._dep == dep.name and conn.state is State.OPEN:
            return conn
        await self.aclose()
        target = dep.websocket
        assert target is not None  # only deployments that speak WebSocket mode get here
        configured = {name.lower() for name, _ in target.headers}
        sent = [
            *target.headers,
            ("X-Client-Request-Id", request_id),
            *((name, value) for name, value in headers if name.lower() not in configured),
        ]
        self._conn = await connect(
            target.url,
            additional_headers=sent,
            user_agent_header=None,
            open_timeout=target.connect_seconds,
            close_timeout=1.0,
            max_size=MAX_UPSTREAM_FRAME_BYTES,
            # Frames read ahead before the library stops reading the socket: with a client that stops
            # reading, a lane holds at most this many (deltas are small; only a final event is large).
            max_queue=UPSTREAM_QUEUE_FRAMES,
            compression=None,
        )
        self._dep = dep.name
        return self._conn

    def abort(self) -> None:
        """Drop the socket at once (its state is unknown: a turn was cut)."""
        conn, self._conn, self._dep = self._conn, None, None
        if conn is not None:
            conn.transport.abort()

    async def aclose(self) -> None:
        """Close the socket properly (the lane ended or moves to another deployment)."""
        conn, self._conn, self._dep = self._conn, None, None
        if conn is None:
            return
        try:
            await conn.close()  # bounded by the connection's close timeout
        except BaseException as exc:  # failed or cancelled half-way: drop it, never leave it open
            conn.transport.abort()
            if not isinstance(exc, Exception):
                raise


class _LaneReply:
    """One turn's events: the first (already read), then each until the turn's final event."""

    __slots__ = ("_chunks", "_conn", "_first", "_idle", "_lane", "headers", "status")

    def __init__(self, lane: LaneSocket, conn: ClientConnection, first: bytes, idle: float) -> None:
        self.status = 200
        self.headers: Mapping[str, str] = {"Content-Type": "text/event-stream"}
        self._lane = lane
        self._conn = conn
        self._first = first
        self._idle = idle
        self._chunks: AsyncIterator[bytes] | None = None

    async def read(self) -> bytes:
        return b"".join([chunk async for chunk in self.chunks()])

    def chunks(self) -> AsyncIterator[bytes]:
        if self._chunks is None:
            self._chunks = self._events()
        return self._chunks

    async def _events(self) -> AsyncIterator[bytes]:
        frame = self._first
        while True:  # bounded: ends at the turn's final event, a closed socket or the idle timeout
            yield as_sse(frame)
            if _event_type(frame) in _FINAL_TYPES:
                return
            try:
                async with asyncio.timeout(self._idle):
                    frame = await self._conn.recv(decode=False)
            except ConnectionClosed:
                raise ConnectionResetError("the upstream WebSocket closed mid-turn") from None

    def close(self) -> None:
        self._lane.abort()

    def release(self) -> None:
        return None  # the socket stays open for the lane's next turn
