"""Pools of keep-alive connections, one per deployment and origin, and the call that uses them."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections import deque
from collections.abc import Mapping, Sequence

import aiohappyeyeballs

from .connection import Connection, ProxyError, UpstreamDisconnected
from .endpoint import Endpoint, Proxy
from .reply import Reply

_IDEMPOTENT = frozenset({"GET", "HEAD", "DELETE"})
_DNS_TTL_SECONDS = 30.0  # upstream address changes are followed within half a minute
_HAPPY_EYEBALLS_DELAY = 0.25  # RFC 8305: start the next address if one has not connected by then
_MAX_PROXY_ANSWER = 64 * 1024
_JOIN_BODY_BYTES = 64 * 1024  # bodies up to this size go out in one buffer with the head (one copy, one write)


class Pool:
    """Keep-alive connections to one origin; the most recently used is reused first."""

    def __init__(self, client: Http1Client, endpoint: Endpoint) -> None:
        self.loop = asyncio.get_running_loop()
        self._client = client
        self._keepalive = client.keepalive_seconds  # (both fixed for the client's life)
        self._max_idle = client.max_idle_per_pool
        self._host, self._port, self._tls = endpoint.host, endpoint.port, endpoint.tls
        self._proxy = endpoint.proxy
        self.idle: deque[Connection] = deque()  # oldest left, most recently used right
        self.live: set[Connection] = set()
        self._addresses: list[aiohappyeyeballs.AddrInfoType] = []
        self._addresses_until = 0.0

    def take_idle(self) -> Connection | None:
        idle = self.idle
        if not idle:
            return None
        oldest = self.loop.time() - self._keepalive  # idle since before this: past the keep-alive time
        while idle:
            conn = idle.pop()
            transport = conn.transport
            # is_closing(): the upstream's FIN may be processed before connection_lost runs
            if not conn.closed and conn.idle_since > oldest and transport is not None and not transport.is_closing():
                conn.reused = True
                return conn
            conn.abort()
        return None

    async def _resolve(self) -> list[aiohappyeyeballs.AddrInfoType]:
        now = self.loop.time()
        if now >= self._addresses_until:
            host, port = (self._proxy.host, self._proxy.port) if self._proxy else (self._host, self._port)
            infos = await self.loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            if not infos:
                raise OSError(f"no address found for {host}")
            self._addresses, self._addresses_until = list(infos), now + _DNS_TTL_SECONDS
        return self._addresses

    async def connect(self, seconds: float) -> Connection:
        """A new connection: DNS (cached), TCP over every address (happy eyeballs), the proxy's
        tunnel if there is one, TLS; all within ``seconds``."""
        ctx = self._client.ssl_context() if self._tls else None
        async with asyncio.timeout(seconds):
            addresses = await self._resolve()
            try:
                sock = await aiohappyeyeballs.start_connection(
                    addresses, happy_eyeballs_delay=_HAPPY_EYEBALLS_DELAY, loop=self.loop
                )
            except OSError as exc:
                # The error comes from a frame that still refers to it (a reference cycle that
                # would carry every frame this exception passes through, request included).
                raise exc.with_traceback(None) from None
            try:
                if self._proxy is not None and self._tls:
                    await self._tunnel(sock, self._proxy)
                transport, proto = await self.loop.create_connection(
                    lambda: Connection(self),
                    sock=sock,
                    ssl=ctx,
                    server_hostname=self._host if ctx is not None else None,
                )
            except BaseException:
                sock.close()
                raise
        if not proto.closed:
            proto.transport = transport  # uvloop may call connection_made only on a later loop turn
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:  # not a TCP socket
            pass
        self.live.add(proto)
        return proto

    async def _tunnel(self, sock: socket.socket, proxy: Proxy) -> None:
        """``CONNECT host:port`` through the proxy; TLS to the upstream then runs inside it."""
        authority = f"[{self._host}]:{self._port}" if ":" in self._host else f"{self._host}:{self._port}"
        head = f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n"
        if proxy.authorization is not None:
            head += f"Proxy-Authorization: {proxy.authorization}\r\n"
        await self.loop.sock_sendall(sock, (head + "\r\n").encode("latin-1"))
        answer = b""
        while b"\r\n\r\n" not in answer:  # bounded by _MAX_PROXY_ANSWER and the connect deadline
            data = await self.loop.sock_recv(sock, 4096)
            if not data:
                raise ProxyError(f"the proxy closed the connection instead of opening a tunnel to {authority}")
            answer += data
            if len(answer) > _MAX_PROXY_ANSWER:
                raise ProxyError("the proxy's answer to CONNECT is too large")
        fields = answer.split(b"\r\n", 1)[0].split(b" ", 2)
        if len(fields) < 2 or not fields[0].startswith(b"HTTP/1.") or not fields[1].isdigit():
            raise ProxyError("the proxy did not answer CONNECT with HTTP")
        status = int(fields[1])
        if not 200 <= status < 300:
            raise ProxyError(f"the proxy refused the tunnel to {authority} (HTTP {status})")
        if not answer.endswith(b"\r\n\r\n") or answer.count(b"\r\n\r\n") != 1:
            raise ProxyError("the proxy sent bytes after its answer to CONNECT")

    def put(self, conn: Connection) -> None:
        conn.idle_since = self.loop.time()
        idle = self.idle
        idle.append(conn)
        while len(idle) > self._max_idle:
            idle.popleft().abort()

    def forget(self, conn: Connection) -> None:
        self.live.discard(conn)
        if conn in self.idle:
            self.idle.remove(conn)

    def sweep(self) -> None:
        """Close idle connections past the keep-alive time (oldest first)."""
        cutoff = self.loop.time() - self._client.keepalive_seconds
        while self.idle and self.idle[0].idle_since < cutoff:
            self.idle.popleft().abort()

    def close(self) -> None:
        for conn in list(self.live):
            conn.abort()
        self.idle.clear()
        self.live.clear()


class Http1Client:
    """Pools of keep-alive connections, one per key (a deployment and its origin)."""

    def __init__(
        self,
        *,
        keepalive_seconds: float = 30.0,
        max_idle_per_pool: int = 512,
        max_body_bytes: int = 128 * 1024 * 1024,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.keepalive_seconds = keepalive_seconds
        self.max_idle_per_pool = max_idle_per_pool
        self.max_body_bytes = max_body_bytes
        self._ssl = ssl_context
        self._pools: dict[str, Pool] = {}
        self._closing: set[asyncio.Task[None]] = set()
        self._retiring: set[Pool] = set()
        self._sweeper: asyncio.TimerHandle | None = None

    def ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:  # built on first use: loading the CA store costs a few ms
            self._ssl = ssl.create_default_context()
        return self._ssl

    def _pool(self, key: str, endpoint: Endpoint) -> Pool:
        """A new pool for ``key`` (``send`` looks the existing ones up itself)."""
        pool = self._pools[key] = Pool(self, endpoint)
        if self._sweeper is None:
            self._schedule_sweep(pool.loop)
        return pool

    def _schedule_sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        self._sweeper = loop.call_later(max(1.0, self.keepalive_seconds / 2), self._sweep, loop)

    def _sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        for pool in self._pools.values():
            pool.sweep()
        self._schedule_sweep(loop)

    def idle_connections(self, pool_key: str) -> int:
        pool = self._pools.get(pool_key)
        return 0 if pool is None else len(pool.idle)

    async def send(
        self,
        endpoint: Endpoint,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        content_type: str | None = None,
        extra_headers: Sequence[tuple[str, str]] = (),
        query: Mapping[str, str] | None = None,
        pool_key: str | None = None,
    ) -> Reply:
        """Write the request; return once the answer's status and headers arrived."""
        length = len(body) if body is not None else (0 if method in ("POST", "PUT", "PATCH") else None)
        data = endpoint.head(method, path, query, extra_headers, content_type, length)
        rest = b""
        if body:
            if len(body) <= _JOIN_BODY_BYTES:
                data += body
            else:  # written after the head, never copied (a 30 MiB body would be twice in memory)
                rest = body
        key = pool_key or endpoint.origin
        pool = self._pools.get(key) or self._pool(key, endpoint)
        for _ in range(2):  # a stale pooled connection is replaced once, idempotent requests only
            conn = pool.take_idle() or await pool.connect(endpoint.connect_seconds)
            try:
                conn.start(data, rest, endpoint.read_idle_seconds, self.max_body_bytes, method == "HEAD")
                while conn.headers is None:
                    if conn.exc is not None:
                        raise conn.error()
                    await conn.wait()
            except UpstreamDisconnected:
                if conn.reused and conn.received == 0 and conn.headers is None and method in _IDEMPOTENT:
                    continue
                raise
            except BaseException:
                conn.abort()
                raise
            return Reply(conn)
        raise UpstreamDisconnected("the upstream closed two connections before answering")

    def retire(self, keep: set[str], grace_seconds: float) -> None:
        """Close, after ``grace_seconds`` (in-flight answers finish), the pools not in ``keep``."""
        for key in [k for k in self._pools if k not in keep]:
            pool = self._pools.pop(key)
            self._retiring.add(pool)
            task = asyncio.get_running_loop().create_task(self._close_later(pool, grace_seconds))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    async def _close_later(self, pool: Pool, delay: float) -> None:
        await asyncio.sleep(delay)
        self._retiring.discard(pool)
        pool.close()

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for task in list(self._closing):
            task.cancel()
        await asyncio.gather(*self._closing, return_exceptions=True)
        pools, self._pools = [*self._pools.values(), *self._retiring], {}
        self._retiring.clear()
        for pool in pools:
            pool.close()
        await asyncio.sleep(0)  # let the transports' connection_lost callbacks run
