"""One keep-alive connection: an asyncio protocol fed to llhttp (the caller reads the answer through :mod:`.reply`)."""

from __future__ import annotations

import asyncio
from typing import Protocol, cast

import httptools
from multidict import CIMultiDict, CIMultiDictProxy

_HIGH_WATER = 1 << 20  # buffered, undrained body bytes at which reading pauses
_MAX_HEAD_BYTES = 64 * 1024  # status line + headers (llhttp sets no limit; aiohttp allowed 8 KiB per line)
_MAX_FIELDS = 256  # header (and trailer) lines of one answer
_NO_BODY_STATUS = frozenset({204, 304})


class UpstreamProtocolError(ConnectionError):
    """The upstream broke HTTP/1.1 (or sent more than the gateway accepts); the connection is dropped."""


class UpstreamDisconnected(ConnectionResetError):
    """The connection closed before the answer was complete."""


class ProxyError(ConnectionError):
    """The egress proxy refused or broke the ``CONNECT`` tunnel (never echoes its credentials)."""


class ConnectionOwner(Protocol):
    """What a connection needs of its pool (``client.Pool``): the loop, and where it goes when it is
    free again or lost. Declared here so the connection does not depend on the pool's module."""

    @property
    def loop(self) -> asyncio.AbstractEventLoop: ...

    def put(self, conn: Connection) -> None: ...

    def forget(self, conn: Connection) -> None: ...


class Connection(asyncio.Protocol):
    """One TCP (or TLS) connection and the answer being read on it."""

    def __init__(self, pool: ConnectionOwner) -> None:
        self._pool = pool
        self._loop = pool.loop
        self.transport: asyncio.Transport | None = None
        # The parser holds bound methods of this object (a cycle): made for the first request,
        # dropped when the connection is lost, so a closed connection is freed by refcount.
        self._parser: httptools.HttpResponseParser | None = None
        self.closed = False
        self.reused = False
        self.idle_since = 0.0
        # Set by every start() (or, until_close, with the headers), and None again at the end of a
        # request (exc, waiter, idle_timer): not reset between requests.
        self.until_close = False
        self.exc: BaseException | None = None
        self.waiter: asyncio.Future[None] | None = None
        self.last_io = 0.0
        self.idle_seconds = 0.0
        self.idle_timer: asyncio.TimerHandle | None = None
        self.limit = 0
        self.room = 0
        self.near = 0  # bytes taken past which the limit, not the high-water mark, bounds the room
        self.head_only = False
        self._reset()

    def _reset(self) -> None:
        """The per-answer state a pooled connection starts its next request with."""
        self.busy = False
        self.status = 0
        self._raw_headers: list[tuple[str, str]] = []
        self.headers: CIMultiDictProxy[str] | None = None
        self.pieces: list[bytes] = []
        self.buffered = 0
        self.taken = 0
        self.complete = False
        self.keep_alive = False
        self.paused = False
        self.head_bytes = 0
        self.head_read = 0

    @property
    def received(self) -> int:
        """Body bytes received so far (taken by the reader or still buffered)."""
        return self.taken + self.buffered

    # -- protocol callbacks ---------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not asyncio.Transport subclasses

    def data_received(self, data: bytes) -> None:
        if not self.busy or self.complete:
            self._unsolicited()  # bytes nobody asked for: the connection cannot be trusted any more
            return
        self.last_io = self._loop.time()
        parser = self._parser
        if parser is None:
            return
        try:
            parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(UpstreamProtocolError("the upstream switched protocols"))
        except httptools.HttpParserError as exc:
            self._fail(UpstreamProtocolError(f"the upstream sent invalid HTTP ({exc})"))
        if self.headers is None:
            if not self.closed:  # a head that has not ended after this read
                self.head_read += len(data)  # (counts partial lines, which llhttp's callbacks do not)
                if self.head_read > _MAX_HEAD_BYTES:
                    self._fail(UpstreamProtocolError(f"the upstream's headers exceed {_MAX_HEAD_BYTES} bytes"))
            return
        # The reader is woken once per read, not per callback: one read often holds many chunks
        # of a streamed body (llhttp calls on_body for each), and the reader runs after this returns.
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def eof_received(self) -> bool | None:
        # The upstream closed its side: never hand this connection out again, even in the short
        # time before connection_lost runs.
        self.closed = True
        self._pool.forget(self)
        return None  # let the transport close

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._pool.forget(self)
        # Nothing may point back at this object once the connection is gone: the idle timer (in
        # the loop's heap for up to read_idle_seconds), the parser, the transport.
        if self.idle_timer is not None:
            self.idle_timer.cancel()
            self.idle_timer = None
        self._parser = None
        self.transport = None
        if not self.busy or self.complete:
            return
        if self.headers is not None and self.until_close and self.exc is None and exc is None:
            self._done()  # an orderly close ends this body (a reset does not)
            return
        if self.exc is None:
            where = "before answering" if self.headers is None else "in the middle of the answer"
            self.exc = UpstreamDisconnected(f"the upstream closed the connection {where}")
        self._wake()

    # -- parser callbacks -------------------------------------------------------------------------
    def on_header(self, name: bytes, value: bytes) -> None:
        # Trailers after a chunked body land in the same list (the headers were taken from it
        # already), so its length bounds header and trailer lines together.
        fields = self._raw_headers
        fields.append((name.decode("latin-1"), value.decode("latin-1")))
        self.head_bytes += len(name) + len(value) + 4  # exact even when one read holds all headers
        if self.head_bytes > _MAX_HEAD_BYTES or len(fields) > _MAX_FIELDS:
            self._head_too_large()

    def _head_too_large(self) -> None:
        if len(self._raw_headers) > _MAX_FIELDS:
            self._fail(UpstreamProtocolError(f"the upstream sent more than {_MAX_FIELDS} header lines"))
        else:
            self._fail(UpstreamProtocolError(f"the upstream's headers exceed {_MAX_HEAD_BYTES} bytes"))

    def on_headers_complete(self) -> None:
        if self.complete or self.exc is not None:
            self._unsolicited()
            return
        parser = self._parser
        assert parser is not None  # only called by it
        status = parser.get_status_code()
        if 100 <= status < 200:  # interim answer (100 Continue, 103 Early Hints): skip it
            self._raw_headers = []
            return
        self.status = status
        headers = CIMultiDict(self._raw_headers)
        self.headers = CIMultiDictProxy(headers)
        if "Content-Length" in headers or status in _NO_BODY_STATUS or self.head_only:
            self.until_close = False
        else:
            self.until_close = "chunked" not in headers.get("Transfer-Encoding", "").lower()
        if self.head_only:
            # llhttp cannot be told that a HEAD answer has no body; it would wait for the
            # Content-Length bytes. The answer ends here and the next one gets a fresh parser.
            self.keep_alive = parser.should_keep_alive()
            self._parser = httptools.HttpResponseParser(self)
            self._done()

    def on_body(self, body: bytes) -> None:
        # One test for every unusual case: ``room`` is the high-water mark or the size limit less
        # what was taken, whichever is smaller, and -1 once the answer is complete or failed.
        buffered = self.buffered + len(body)
        if buffered > self.room:
            self._overflow(body)
            return
        self.pieces.append(body)
        self.buffered = buffered

    def _overflow(self, body: bytes) -> None:
        if self.complete or self.exc is not None:  # bytes past the answer, or after a failure
            self._unsolicited()
            return
        self.pieces.append(body)
        self.buffered += len(body)
        if self.taken + self.buffered > self.limit:
            self._fail(UpstreamProtocolError(f"the upstream's answer is larger than {self.limit} bytes"))
        elif self.buffered > _HIGH_WATER and not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()

    def on_message_complete(self) -> None:
        if self.status == 0:  # the end of an interim answer
            return
        if self.complete:  # a second answer nobody asked for
            self._unsolicited()
            return
        parser = self._parser
        self.keep_alive = parser is not None and parser.should_keep_alive()
        self._done()

    # -- state ------------------------------------------------------------------------------------
    def _unsolicited(self) -> None:
        """Bytes past the answer (or after a failure): keep what was read, drop the connection."""
        self.keep_alive = False
        if not self.closed:
            self.abort()

    def _done(self) -> None:
        if self.exc is not None:  # failed earlier in the same read (e.g. the body passed the limit)
            return
        self.complete = True
        self.room = -1
        if self.idle_timer is not None:
            self.idle_timer.cancel()
            self.idle_timer = None
        self._wake()

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def error(self) -> BaseException:
        """A new exception like the one the answer failed with, for the caller to raise.

        ``exc`` itself is never raised: its traceback would hold the frames of the reading
        coroutine, which hold this connection, which holds ``exc`` (a reference cycle per failed
        request, with the request's body in it, left for the cyclic collector).
        """
        exc = self.exc
        assert exc is not None
        return type(exc)(*exc.args)

    def _fail(self, exc: BaseException) -> None:
        if self.exc is None and not self.complete:
            self.exc = exc
        self.room = -1
        self.abort()
        self._wake()

    def _check_idle(self) -> None:
        self.idle_timer = None
        if not self.busy or self.complete or self.exc is not None:
            return
        now = self._loop.time()
        due = now + self.idle_seconds if self.paused else self.last_io + self.idle_seconds
        if due > now:  # bytes came meanwhile, or reading is paused because the caller is slow
            self.idle_timer = self._loop.call_at(due, self._check_idle)
            return
        self._fail(TimeoutError(f"no data from the upstream for {self.idle_seconds:g} s"))

    def abort(self) -> None:
        self.closed = True
        if self.idle_timer is not None:
            self.idle_timer.cancel()
            self.idle_timer = None
        if self.transport is not None:
            self.transport.abort()

    def start(self, data: bytes, rest: bytes, idle_seconds: float, limit: int, head_only: bool) -> None:
        """Send one request (``data``, then ``rest`` when not empty); the answer fills this object."""
        self.busy = True
        transport = self.transport
        if self.closed or transport is None:  # lost between the pool and here
            self.exc = UpstreamDisconnected("the upstream closed the connection before the request was sent")
            return
        if self._parser is None:
            self._parser = httptools.HttpResponseParser(self)
        self.head_only = head_only
        self.limit = limit
        self.room = limit if limit < _HIGH_WATER else _HIGH_WATER
        self.near = limit - _HIGH_WATER
        self.idle_seconds = idle_seconds
        self.last_io = self._loop.time()
        self.idle_timer = self._loop.call_at(self.last_io + idle_seconds, self._check_idle)
        if rest:
            transport.writelines((data, rest))
        else:
            transport.write(data)

    async def wait(self) -> None:
        """Until the next change (headers, body bytes, end or failure)."""
        waiter = self._loop.create_future()
        self.waiter = waiter
        try:
            await waiter
        finally:
            self.waiter = None

    def take(self) -> bytes:
        pieces = self.pieces
        data = pieces[0] if len(pieces) == 1 else b"".join(pieces)
        self.pieces = []
        taken = self.taken + self.buffered
        self.taken = taken
        self.buffered = 0
        if taken > self.near and self.room >= 0:  # (-1: the answer is complete or failed, and stays so)
            room = self.limit - taken
            self.room = room if room < _HIGH_WATER else _HIGH_WATER
        if self.paused and self.transport is not None and not self.closed:
            self.paused = False
            self.last_io = self._loop.time()  # idle time counts again from now
            self.transport.resume_reading()
        return data

    def finish(self) -> None:
        """The caller is done with the answer: pool the connection or close it."""
        if self.complete and self.keep_alive and self.exc is None and not self.closed:
            if self.paused and self.transport is not None:  # the answer ended in the read that paused
                self.transport.resume_reading()
            self._reset()
            self._pool.put(self)
        else:
            self.abort()
