"""The caller's view of an upstream answer whose status and headers arrived: read the body whole,
or iterate it as it comes, then release the connection to its pool (or close it)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping

from .connection import Connection


class Reply:
    """An upstream answer whose status and headers arrived; the body is read or iterated."""

    __slots__ = ("_conn", "_iter", "headers", "status")

    def __init__(self, conn: Connection) -> None:
        self._conn: Connection | None = conn
        self.status = conn.status
        assert conn.headers is not None
        self.headers: Mapping[str, str] = conn.headers  # a CIMultiDictProxy: case-insensitive
        self._iter: _Pieces | None = None

    def _live(self) -> Connection:
        if self._conn is None:
            raise RuntimeError("the reply was already released or closed")
        return self._conn

    async def read(self) -> bytes:
        """The rest of the body. Pieces are taken as they come, so reading never stays paused."""
        conn = self._live()
        parts: list[bytes] = []
        while True:
            if conn.pieces:
                parts.append(conn.take())
            if conn.complete:
                return parts[0] if len(parts) == 1 else b"".join(parts)
            if conn.exc is not None:
                raise conn.error()
            await conn.wait()

    def chunks(self) -> AsyncIterator[bytes]:
        if self._iter is None:
            self._iter = _Pieces(self._live())
        return self._iter

    def release(self) -> None:
        conn, self._conn = self._conn, None
        if self._iter is not None:
            self._iter.stop()  # the connection may serve another request now
        if conn is not None:
            conn.finish()

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if self._iter is not None:
            self._iter.stop()
        if conn is not None:
            conn.abort()


class _Pieces:
    """The body as it arrives: everything buffered so far, joined, per step.

    Once the body ended, or the reply was released or closed, it stays at its end: it never
    reads from a connection that went back to the pool and serves another request.
    """

    __slots__ = ("_conn",)

    def __init__(self, conn: Connection) -> None:
        self._conn: Connection | None = conn

    def stop(self) -> None:
        self._conn = None

    def __aiter__(self) -> _Pieces:
        return self

    async def __anext__(self) -> bytes:
        while True:
            conn = self._conn
            if conn is None:
                raise StopAsyncIteration
            if conn.pieces:
                return conn.take()
            if conn.complete:
                self._conn = None
                raise StopAsyncIteration
            if conn.exc is not None:
                raise conn.error()
            await conn.wait()
