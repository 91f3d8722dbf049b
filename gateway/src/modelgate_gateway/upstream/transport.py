"""How bytes reach an upstream: the seam between the executor and providers.

An :class:`Transport` opens one upstream call and hands back an :class:`UpstreamReply` whose
body the caller reads or streams. The HTTP transport speaks the Responses API and forwards bytes
as they are; the mock transport answers in-process; the chat-completions transport wraps the HTTP
one with a translator. The executor and relay never know which one they hold.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any, Protocol

import aiohttp
import orjson
from multidict import CIMultiDict

from ..runtime import DeploymentRuntime

_JSON = "application/json"
_MAX_PREPARED = 256  # deployments whose headers and timeouts are kept ready (several configs' worth)


class UpstreamReply(Protocol):
    status: int
    headers: Mapping[str, str]

    async def read(self) -> bytes: ...

    def chunks(self) -> AsyncIterator[bytes]:
        """The body's one iterator: every call returns the same, already partly consumed one."""

    def close(self) -> None:
        """Abort: drop the connection (used when the client went away or the read failed)."""

    def release(self) -> None:
        """Done reading: return the connection to the pool."""


class Transport(Protocol):
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
    ) -> UpstreamReply: ...


class HttpReply:
    __slots__ = ("_resp", "headers", "status")

    def __init__(self, resp: aiohttp.ClientResponse) -> None:
        self._resp = resp
        self.status = resp.status
        self.headers: Mapping[str, str] = resp.headers

    async def read(self) -> bytes:
        return await self._resp.read()

    def chunks(self) -> AsyncIterator[bytes]:
        return self._resp.content.iter_any()

    def close(self) -> None:
        self._resp.close()

    def release(self) -> None:
        self._resp.release()


class MemoryReply:
    """A reply produced in-process (mock provider, translated or stored responses)."""

    def __init__(self, status: int, body: bytes | None = None,
                 frames: AsyncIterator[bytes] | None = None) -> None:
        self.status = status
        self.headers: Mapping[str, str] = {
            "Content-Type": "text/event-stream" if frames is not None else "application/json"
        }
        self._body = body or b""
        self._frames = frames

    async def read(self) -> bytes:
        return self._body

    def chunks(self) -> AsyncIterator[bytes]:
        return self._frames if self._frames is not None else _once(self._body)

    def close(self) -> None:
        return None

    def release(self) -> None:
        return None


async def _once(body: bytes) -> AsyncIterator[bytes]:
    yield body


def json_error(status: int, message: str, code: str | None = None, param: str | None = None) -> MemoryReply:
    body = {"error": {"message": message, "type": "invalid_request_error", "param": param, "code": code}}
    return MemoryReply(status, orjson.dumps(body))


class Pools:
    """One ClientSession (one keep-alive connection pool) per deployment.

    Keyed by the deployment's stable name and its origin, so a reload that edits a weight or
    rotates a key keeps warm connections while a changed URL gets a fresh pool; pools no config
    uses any more are closed after a grace period long enough for in-flight streams to end.
    """

    def __init__(self) -> None:
        self._sessions: dict[str, aiohttp.ClientSession] = {}
        self._closing: set[asyncio.Task[None]] = set()

    def session(self, dep: DeploymentRuntime) -> aiohttp.ClientSession:
        session = self._sessions.get(dep.pool_key)
        if session is None or session.closed:
            connector = aiohttp.TCPConnector(
                limit=0,  # concurrency is capped per deployment by the executor, not here
                ttl_dns_cache=30,  # follow DNS changes of upstream endpoints within half a minute
                keepalive_timeout=30,
            )
            session = aiohttp.ClientSession(
                connector=connector,
                # No client-side decompression: bodies pass through untouched and uncompressed.
                skip_auto_headers=("Accept-Encoding", "User-Agent"),
                auto_decompress=False,
                timeout=aiohttp.ClientTimeout(total=None),
            )
            self._sessions[dep.pool_key] = session
        return session

    def retire_unused(self, keys: set[str], grace_seconds: float) -> None:
        for key in [k for k in self._sessions if k not in keys]:
            session = self._sessions.pop(key)
            task = asyncio.get_running_loop().create_task(self._close_later(session, grace_seconds))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    @staticmethod
    async def _close_later(session: aiohttp.ClientSession, delay: float) -> None:
        await asyncio.sleep(delay)
        await session.close()

    async def close(self) -> None:
        for task in list(self._closing):
            task.cancel()
        sessions, self._sessions = list(self._sessions.values()), {}
        await asyncio.gather(*(s.close() for s in sessions), return_exceptions=True)


class HttpTransport:
    """The Responses API over HTTP, bytes forwarded as they are (only ``model`` rewritten)."""

    def __init__(self, pools: Pools) -> None:
        self._pools = pools
        self._prepared: dict[int, tuple[DeploymentRuntime, CIMultiDict[str], aiohttp.ClientTimeout]] = {}
        """Per deployment (by identity): its base headers and timeouts, built once, not per call."""

    def _prepare(self, dep: DeploymentRuntime) -> tuple[CIMultiDict[str], aiohttp.ClientTimeout]:
        found = self._prepared.get(id(dep))
        if found is not None and found[0] is dep:  # the entry holds dep, so its id is not reused
            return found[1], found[2]
        if len(self._prepared) >= _MAX_PREPARED:  # reloads make new deployments; forget old ones
            self._prepared.clear()
        headers = CIMultiDict(dep.headers)
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=dep.connect_seconds, sock_read=dep.stream_idle_seconds
        )
        self._prepared[id(dep)] = (dep, headers, timeout)
        return headers, timeout

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
    ) -> UpstreamReply:
        base, timeout = self._prepare(dep)
        headers = base.copy()
        headers["X-Client-Request-Id"] = request_id
        headers["X-Request-Id"] = request_id
        data = None
        if payload is not None:
            headers["Content-Type"] = _JSON
            data = raw if raw is not None else orjson.dumps(payload)
        params: Mapping[str, str] | None = query
        if dep.query:
            params = {**dep.query, **(query or {})}
        resp = await self._pools.session(dep).request(
            method, dep.base_url + path, data=data, headers=headers, params=params, timeout=timeout
        )
        return HttpReply(resp)


def rewrite_body(payload: dict[str, Any], raw: bytes, updates: Mapping[str, Any]) -> bytes:
    """The client's body with only ``updates`` changed; the raw bytes when nothing changes."""
    if all(payload.get(k) == v for k, v in updates.items()):
        return raw
    return orjson.dumps({**payload, **updates})
