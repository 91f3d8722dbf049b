"""One turn of a client WebSocket: a ``response.create`` frame served like ``POST /v1/responses``.

The turn goes through the create path itself (:func:`.create.route_create` and
:func:`.create.serve_create`): model allowlist, ``previous_response_id`` resolution and ownership,
affinity, balancing, failover before the first event, budgets, then the SSE relay with its id
rewriting and usage. Only the ends differ: the body is the frame (its envelope fields removed,
``stream`` implied), the events go out as text frames (with the lane's ``stream_id``), and an error
is an ``error`` event on the socket, not an HTTP status. Each turn is one request record: metrics,
cost and the request log line, as on HTTP.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import time
from collections.abc import Mapping
from typing import Any

import orjson
from aiohttp import WSMsgType, web

from ..appstate import GatewayState
from ..errors import GatewayError, InvalidRequest, ShuttingDown
from ..http1.eventstream import event_data
from ..observability.recording import Observer, RequestRecord
from ..runtime import DeploymentRuntime, KeyRuntime
from ..streaming.relay import relay_into
from ..streaming.sse import SseRelayState
from ..upstream.balancing import HealthBoard
from ..upstream.executor import Opened
from ..upstream.pools import PoolBoard
from ..upstream.transport import Transport
from ..upstream.websocket_transport import LaneSocket
from .create import route_create, serve_create
from .websocket_memory import SocketMemory, as_items

log = logging.getLogger("modelgate.gateway.websocket")

ENVELOPE = ("type", "stream_id", "stream")
"""Fields of a ``response.create`` frame that are the socket's, not the create body's."""


class Lane:
    """A ``stream_id`` lane: its turns run one after the other, on its own upstream socket if any.

    Also what the executor sees as the process state (``upstream.executor.ExecutorDeps``): the
    shared board and dice, and this lane's socket for deployments that speak WebSocket mode.
    """

    __slots__ = ("_state", "name", "queue", "socket", "worker")

    def __init__(self, state: GatewayState, name: str) -> None:
        self._state = state
        self.name = name
        self.queue: list[dict[str, Any]] = []
        self.socket = LaneSocket()
        self.worker: asyncio.Task[None] | None = None

    @property
    def board(self) -> HealthBoard:
        return self._state.board

    @property
    def observer(self) -> Observer:
        return self._state.observer

    @property
    def rng(self) -> random.Random:
        return self._state.rng

    @property
    def servers(self) -> PoolBoard:
        return self._state.servers

    def transport(self, dep: DeploymentRuntime) -> Transport:
        return self.socket if dep.websocket is not None else self._state.transport(dep)


class TurnSink:
    """Relayed SSE events out as text frames (:class:`..streaming.relay.Sink`); the lane's id added."""

    __slots__ = ("_prefix", "_ws")
    prepared = True

    def __init__(self, ws: web.WebSocketResponse, stream_id: str | None) -> None:
        self._ws = ws
        self._prefix = b'{"stream_id":' + orjson.dumps(stream_id) + b"," if stream_id is not None else None

    async def write(self, data: bytes) -> None:
        prefix = self._prefix
        for raw in data.split(b"\n\n"):
            payload = event_data(raw) if raw else b""
            if not payload.startswith(b"{"):
                continue  # a comment, a keep-alive, "[DONE]": nothing a socket client reads
            if prefix is not None and not payload[1:].lstrip().startswith(b"}"):
                payload = prefix + payload[1:]
            await self._ws.send_frame(payload, WSMsgType.TEXT)


def error_event(err: GatewayError, stream_id: str | None) -> bytes:
    """An API ``error`` event: the HTTP answer's envelope, with its status."""
    try:
        body = orjson.loads(err.body())
    except orjson.JSONDecodeError:
        body = {"error": {"message": err.message, "type": err.type, "param": None, "code": err.code}}
    error = body.get("error") if isinstance(body, dict) and isinstance(body.get("error"), dict) else body
    event: dict[str, Any] = {"type": "error", "status": err.status, "error": error}
    if stream_id is not None:
        event["stream_id"] = stream_id
    return orjson.dumps(event)


class TurnContext:
    """What every turn of one socket shares: the process state, the caller, the handshake's headers."""

    __slots__ = ("headers", "key", "memory", "state", "ws")

    def __init__(
        self,
        state: GatewayState,
        ws: web.WebSocketResponse | None,
        key: KeyRuntime | None,
        headers: Mapping[str, str],
        memory: SocketMemory,
    ) -> None:
        self.state = state
        self.ws = ws
        self.key = key
        self.headers = headers
        self.memory = memory


async def run_turn(ctx: TurnContext, lane: Lane, frame: dict[str, Any]) -> None:
    """Serve one frame; reported once (metrics, cost, log line) whatever happens."""
    state = ctx.state
    record = RequestRecord(
        request_id="req_" + os.urandom(12).hex(),
        started_at=time.monotonic(),
        wall_time=time.time(),
        method="WS",
        route="create",
    )
    record.websocket = True
    if ctx.key is not None:
        record.key_name = ctx.key.name
    stream_id = frame.get("stream_id") if isinstance(frame.get("stream_id"), str) else None
    state.observer.request_started(record)
    task = state.inflight.enter(record)
    try:
        await _serve(ctx, lane, frame, record, stream_id)
    except GatewayError as err:
        await _send_error(ctx, err, record, stream_id)
    except asyncio.CancelledError:
        if not record.cut_by_shutdown or record.status:
            record.client_disconnected = not record.cut_by_shutdown
            record.status = record.status or 499
            raise
        if task is not None:
            task.uncancel()
        record.error_type = "gateway_shutdown"
        cut = ShuttingDown("The gateway is shutting down and could not finish this turn within its drain period.")
        await _send_error(ctx, cut, record, stream_id)
    except Exception:
        log.exception("unexpected error in a WebSocket turn (request %s)", record.request_id)
        failure = GatewayError(f"The gateway failed unexpectedly; request id {record.request_id}.")
        await _send_error(ctx, failure, record, stream_id)
    finally:
        state.inflight.leave(task)
        record.finished_at = time.monotonic()
        asyncio.get_running_loop().call_soon(state.observer.request_finished, record)


async def _send_error(ctx: TurnContext, err: GatewayError, record: RequestRecord, stream_id: str | None) -> None:
    record.status = err.status
    record.error_type = record.error_type or err.type
    record.error_code = err.code
    try:
        assert ctx.ws is not None
        await ctx.ws.send_frame(error_event(err, stream_id), WSMsgType.TEXT)
    except Exception:  # the client is gone: nobody reads the error
        record.client_disconnected = True


async def _serve(
    ctx: TurnContext, lane: Lane, frame: dict[str, Any], record: RequestRecord, stream_id: str | None
) -> None:
    state = ctx.state
    runtime = state.current()
    if frame.get("background") is True:
        raise InvalidRequest("'background' is not supported in WebSocket mode.", param="background")
    payload = {name: value for name, value in frame.items() if name not in ENVELOPE}
    payload["stream"] = True
    continued = payload.get("previous_response_id")
    remembered = ctx.memory.get(continued)
    continues = None
    if remembered is not None:  # a store=false response this socket served over HTTP: send its context
        dep = runtime.deployments.get(remembered.deployment)
        if dep is not None:
            payload["input"] = [*orjson.loads(remembered.context), *as_items(payload.get("input"))]
            del payload["previous_response_id"]
            continues = (dep, str(continued))
    raw = orjson.dumps(payload)
    record.request_body = raw
    try:
        routed = route_create(state, runtime, ctx.key, record, payload, raw, ctx.headers, continues=continues)
        home = lane.socket.deployment
        if home is not None and routed.call.pinned is None and any(t.deployment == home for t in routed.model.targets):
            # A fresh turn tries the lane's deployment (its upstream socket) first, and fails over as any create.
            routed.call.prefer = home
            routed.call.session = routed.call.session or f"websocket lane {id(lane)}"

        async def relay(opened: Opened, extra: object) -> Opened:
            sse = SseRelayState(routed.caller.make_id(opened.dep.health_key), opened.dep.redactor, routed.conversation)
            assert ctx.ws is not None
            await relay_into(TurnSink(ctx.ws, stream_id), opened, record, sse)
            return opened

        opened = await serve_create(state, runtime, ctx.key, record, routed, relay, deps=lane)
    except BaseException:
        if remembered is not None:
            ctx.memory.forget(str(continued))  # as OpenAI: a failed continuation evicts what it continued
        raise
    _remember(ctx, lane, opened, record, payload)


def _remember(ctx: TurnContext, lane: Lane, opened: Opened, record: RequestRecord, payload: dict[str, Any]) -> None:
    """Keep a finished store=false turn served over HTTP, for the lane's next turn to continue."""
    final = record.final
    if (
        payload.get("store") is not False
        or "previous_response_id" in payload  # continued upstream: the context is not all here
        or opened.dep.websocket is not None  # the upstream socket remembers it
        or record.response_id is None
        or final is None
        or final.get("status") != "completed"
    ):
        return
    items = as_items(payload.get("input"))
    ctx.memory.remember(lane.name, record.response_id, opened.dep.name, items, final.get("output"))
