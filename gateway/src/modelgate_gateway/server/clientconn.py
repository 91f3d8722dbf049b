"""Client connections: read timeouts, a connection cap, and malformed requests kept out of the log.

aiohttp's server has no header-read timeout and no body deadline, and closes idle keep-alive
connections after about an hour, so idle floods, slowloris header senders and slow bodies hold
descriptors until the process runs out of them. :class:`GuardedRequestHandler` (aiohttp's
protocol with a few hooks) adds, per connection:

- a **header timeout**: complete request headers must arrive within it, counted from the
  connection's accept or from the first byte of a following request. Data does not extend it,
  so dripping a header byte at a time gains nothing. Expiry answers 408 (or closes silently if
  nothing was sent) and closes.
- a **body timeout**: the whole body must arrive within it from the end of the headers. Expiry
  fails the body stream with :class:`BodyTimeout` (the handler answers 408) and closes after the
  answer. Only reading the request is bounded: writing the answer (a stream that runs for
  minutes) never is.
- a **keep-alive idle timeout**: aiohttp's own ``keepalive_timeout``.

and, per listener (:class:`ConnectionGuard`), a **cap** on open connections: beyond it the
longest-idle connection (keep-alive idle, or still sending headers) is closed to make room; when
every connection is busy the new one gets a 503 at once and is closed, so descriptors never run
out. Hooks cost one integer compare per read when headers arrive whole; timers are armed only
for requests whose headers or body span several reads.

A malformed request (bare LF, obsolete line folding, bad header bytes) makes aiohttp log an
ERROR with a traceback quoting the raw request, credentials included, and answer with that text.
Here it gets a 400 in the OpenAI error shape with a fixed description, and at most one short
warning line per :data:`BAD_REQUEST_LOG_INTERVAL` (with a count of the ones left out).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from dataclasses import dataclass
from typing import Any, cast

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from ..errors import error_body
from ..observability.metrics import CounterFamily

log = logging.getLogger("modelgate.gateway.clients")

CLOSE_REASONS = ("header_timeout", "body_timeout", "idle_evicted", "over_capacity", "malformed")
BAD_REQUEST_LOG_INTERVAL = 10.0
_EVICTION_SCAN = 64  # connections looked at per admission when full; busy ones move to the back
REFUSED_LINGER = 1.0  # seconds a refused connection may wait for the client to read its 503
_MAX_LINGERING = 64  # refused connections lingering at once; beyond, they are closed at once
# llhttp's descriptions are fixed texts ("Invalid header value char"); anything else may quote data.
_SAFE_REASON = re.compile(r"[A-Za-z][A-Za-z0-9 ,()-]{0,80}")


@dataclass(frozen=True, slots=True)
class ClientLimits:
    header_timeout: float = 10.0
    body_timeout: float = 60.0
    idle_timeout: float = 75.0
    max_connections: int = 8192


class BodyTimeout(TimeoutError):
    """The request body did not arrive within the body timeout (set on the body stream).

    A ``TimeoutError`` so that aiohttp's lingering read after an early answer stops quietly.
    """


def _raw_error(status: str, message: str, code: str, extra: str = "") -> bytes:
    body = error_body(message, "invalid_request_error" if status.startswith("4") else "server_error", None, code)
    head = (f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            f"{extra}Connection: close\r\n\r\n")
    return head.encode() + body


_HEADER_TIMEOUT_RESPONSE = _raw_error(
    "408 Request Timeout", "The request headers were not received in time.", "request_timeout")
_OVER_CAPACITY_RESPONSE = _raw_error(
    "503 Service Unavailable", "The gateway has too many open connections; retry shortly.",
    "too_many_connections", "Retry-After: 1\r\n")


def safe_reason(exc: BaseException | None) -> str:
    """A description of a parse error that never quotes the request's bytes."""
    message = getattr(exc, "message", "")
    first = message.split(":", 1)[0].strip() if isinstance(message, str) else ""
    if _SAFE_REASON.fullmatch(first):
        return first
    return type(exc).__name__ if exc is not None else "malformed request"


class RateLimitedLog:
    """At most one warning per interval; the next one says how many were left out."""

    def __init__(self, interval: float = BAD_REQUEST_LOG_INTERVAL) -> None:
        self.interval = interval
        self._next = 0.0
        self._suppressed = 0

    def warning(self, message: str, *args: object) -> None:
        now = time.monotonic()
        if now < self._next:
            self._suppressed += 1
            return
        self._next = now + self.interval
        suppressed, self._suppressed = self._suppressed, 0
        if suppressed:
            log.warning(message + " (%d more since the last such line)", *args, suppressed)
        else:
            log.warning(message, *args)


class ConnectionGuard:
    """The connections of one listener: the cap, eviction order and close counters."""

    def __init__(self, limits: ClientLimits, closed: CounterFamily | None = None) -> None:
        self.limits = limits
        self.connections: dict[GuardedRequestHandler, None] = {}
        """Admitted and not yet lost, oldest first (busy ones are moved back when skipped)."""
        self._closed = closed
        self.draining = False
        self.lingering = 0
        """Refused connections waiting for their client to read the 503 (bounded)."""
        self.bad_requests = RateLimitedLog()
        if closed is not None:
            for reason in CLOSE_REASONS:
                closed.ensure((reason,))

    def drain(self) -> None:
        """Shutdown: read no new requests. Connections between requests close now (their clients
        retry elsewhere at once), the others once their request is read and answered.

        aiohttp's ``pre_shutdown`` instead stops reading every connection: an upload under way
        never completes, and an idle keep-alive connection stays open but deaf until the end.
        """
        self.draining = True
        for conn in list(self.connections):
            conn.stop_reading()

    def note(self, reason: str) -> None:
        if self._closed is not None:
            self._closed.inc((reason,))

    def admit(self, conn: GuardedRequestHandler) -> bool:
        connections = self.connections
        if len(connections) >= self.limits.max_connections and not self._evict_one():
            self.note("over_capacity")
            return False
        connections[conn] = None
        return True

    def _evict_one(self) -> bool:
        connections = self.connections
        for _ in range(min(_EVICTION_SCAN, len(connections))):
            victim = next(iter(connections))
            del connections[victim]
            if victim.waiting_for_request():
                victim.force_close()
                self.note("idle_evicted")
                return True
            connections[victim] = None  # busy: to the back of the line
        return False


class GuardedRequestHandler(web.RequestHandler):
    """aiohttp's HTTP/1.1 server protocol with the guard's timeouts, cap and error handling."""

    __slots__ = ("_body", "_body_timer", "_guard", "_header_timer", "_partial", "_refused", "_timer_count")

    def __init__(self, manager: web.Server, guard: ConnectionGuard, *, loop: asyncio.AbstractEventLoop,
                 **kwargs: Any) -> None:
        super().__init__(manager, loop=loop, keepalive_timeout=guard.limits.idle_timeout,
                         access_log=None,  # type: ignore[arg-type]  # None (no access log) is supported
                         lingering_time=min(10.0, guard.limits.body_timeout), **kwargs)
        self._guard = guard
        self._header_timer: asyncio.TimerHandle | None = None
        self._timer_count = 0
        self._partial = False
        self._refused = False
        self._body: Any = None  # the body stream (aiohttp StreamReader) being received, if any
        self._body_timer: asyncio.TimerHandle | None = None

    # --- connection lifetime ------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if not self._guard.admit(self):
            self._refuse(cast(asyncio.Transport, transport))  # uvloop's transports are not subclasses
            return
        super().connection_made(transport)
        self._arm_header_timer()

    def _refuse(self, transport: asyncio.Transport) -> None:
        """Answer 503 and close. Closing a socket with the request unread sends a reset, which can
        destroy the answer before the client reads it: a few refused connections at a time send
        FIN instead and discard the request until the client closes (at most REFUSED_LINGER)."""
        self._force_close = True  # data_received discards whatever arrives
        transport.write(_OVER_CAPACITY_RESPONSE)
        guard = self._guard
        if guard.lingering >= _MAX_LINGERING or not transport.can_write_eof():
            transport.close()
            return
        guard.lingering += 1
        self._refused = True
        transport.write_eof()
        self._header_timer = self._loop.call_at(self._loop.time() + REFUSED_LINGER, transport.close)

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._refused:
            self._refused = False
            self._guard.lingering -= 1
        self._guard.connections.pop(self, None)
        self._cancel_timers()
        super().connection_lost(exc)

    def stop_reading(self) -> None:
        """See :meth:`ConnectionGuard.drain`."""
        if self.waiting_for_request():
            self.force_close()
        elif self._body is None:
            self.close()  # after the answer; a body still arriving is read first (_body_complete)

    def waiting_for_request(self) -> bool:
        """Between requests or still receiving headers: closing it loses no request in progress."""
        waiter = self._waiter
        return self._request_count == 0 or (waiter is not None and not waiter.done())

    # --- reading ------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        count = self._request_count
        super().data_received(data)
        if self._request_count != count:
            self._headers_complete()
        elif self._force_close:
            return
        elif data and self.waiting_for_request():
            self._partial = True
            if self._header_timer is None:
                self._arm_header_timer()
        elif self._body is not None and self._body.is_eof():
            self._body_complete()

    def _arm_header_timer(self) -> None:
        self._timer_count = self._request_count
        self._header_timer = self._loop.call_at(self._loop.time() + self._guard.limits.header_timeout,
                                                self._header_timeout)

    def _header_timeout(self) -> None:
        self._header_timer = None
        if self._request_count != self._timer_count or not self.waiting_for_request():
            return  # a request is being handled: not a header wait any more
        self._guard.note("header_timeout")
        transport = self.transport
        if self._partial and transport is not None:
            transport.write(_HEADER_TIMEOUT_RESPONSE)
        self.force_close()

    def _headers_complete(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
        self._partial = False
        previous = self._body
        if previous is not None:  # a message follows the previous body
            self._body_complete()
            if not previous.is_eof():
                # Only a framing error ends a body early, and llhttp then drops the body without
                # failing it: the handler reading it would wait forever. Fail it, and close after
                # the handler's answer (the rest of the stream cannot be trusted).
                previous.set_exception(web.RequestPayloadError("malformed request body framing"))
                self.close()
        if self._messages:
            body = self._messages[-1][1]
            if not body.is_eof():
                self._body = body
                self._body_timer = self._loop.call_at(self._loop.time() + self._guard.limits.body_timeout,
                                                      self._body_timeout)

    def _body_complete(self) -> None:
        self._body = None
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None
        if self._guard.draining:
            self.close()  # the body is in; no further request is read

    def _body_timeout(self) -> None:
        self._body_timer = None
        body, self._body = self._body, None
        if body is None or body.is_eof():
            return
        self._guard.note("body_timeout")
        body.set_exception(BodyTimeout(f"the request body did not arrive within {self._guard.limits.body_timeout:g}s"))
        self.close()  # after the answer; nothing more is read from this connection

    def _cancel_timers(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
        self._body_complete()

    # --- errors -------------------------------------------------------------------------

    def log_exception(self, *args: Any, **kw: Any) -> None:
        """aiohttp's "Unhandled exception" after an answer (reading the rest of a malformed body):
        a client's fault, worth one short rate-limited line, never a traceback."""
        exc = kw.get("exc_info")
        if isinstance(exc, HttpProcessingError | web.RequestPayloadError):
            exc.__traceback__ = None  # see handle_error
            peer = self.peername
            self._guard.bad_requests.warning("dropped the rest of a malformed request from %s: %s",
                                             peer[0] if isinstance(peer, tuple) else peer, safe_reason(exc))
            return
        super().log_exception(*args, **kw)

    def handle_error(self, request: web.BaseRequest, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        """aiohttp's error answer, without the request's bytes in the log or in the answer."""
        if isinstance(exc, HttpProcessingError):
            # aiohttp keeps the parse error in a message that a frame of its traceback holds: a
            # reference cycle per malformed request unless the traceback goes (nothing logs it).
            exc.__traceback__ = None
            reason = safe_reason(exc)
            self._guard.note("malformed")
            self._guard.bad_requests.warning("rejected a malformed HTTP request from %s: %s",
                                             request.remote, reason)
            status = exc.code if 400 <= exc.code < 500 else 400
            body = error_body(f"Malformed HTTP request: {reason}.", "invalid_request_error", None, "bad_request")
        else:  # a handler raised past the endpoint decorator: a gateway bug, traceback wanted
            log.error("unhandled error answering %s %s", request.method, request.path, exc_info=exc)
            body = error_body("The gateway failed unexpectedly.", "server_error", None, None)
        if request.writer.output_size > 0:
            raise ConnectionError("Response is sent already, cannot send another response with the error message")
        resp = web.Response(status=status, body=body, content_type="application/json")
        resp.force_close()
        return resp


class GuardedSite(web.BaseSite):
    """A TCP listener of an aiohttp runner whose connections are :class:`GuardedRequestHandler`."""

    __slots__ = ("_guard", "_host", "_port", "_reuse_port")

    def __init__(self, runner: web.BaseRunner, guard: ConnectionGuard, host: str, port: int, *,
                 backlog: int = 1024, reuse_port: bool = False) -> None:
        super().__init__(runner, backlog=backlog)
        self._guard = guard
        self._host = host
        self._port = port
        self._reuse_port = reuse_port

    @property
    def name(self) -> str:
        return f"http://{self._host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        loop = asyncio.get_running_loop()
        manager = self._runner.server
        assert manager is not None  # the runner is set up before its sites start
        guard = self._guard

        def protocol() -> GuardedRequestHandler:
            return GuardedRequestHandler(manager, guard, loop=loop)

        self._server = await loop.create_server(protocol, self._host, self._port, backlog=self._backlog,
                                                reuse_port=self._reuse_port or None)
