"""How bytes reach an upstream: the seam between the executor and providers.

An :class:`Transport` opens one upstream call and hands back an :class:`UpstreamReply` whose
body the caller reads or streams. The HTTP transport speaks the Responses API and forwards bytes
as they are; the mock transport answers in-process; the chat-completions transport wraps the HTTP
one with a translator. The executor and relay never know which one they hold.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, Protocol

import orjson

from ..errors import error_body
from ..http1 import Http1Client
from ..runtime import DeploymentRuntime

_JSON = "application/json"


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
        headers: Sequence[tuple[str, str]] = (),
    ) -> UpstreamReply:
        """``headers``: the client's headers to pass on (``spec.forwardHeaders``), already checked."""


class MemoryReply:
    """A reply produced in-process (mock provider, translated or stored responses)."""

    def __init__(self, status: int, body: bytes | None = None, frames: AsyncIterator[bytes] | None = None) -> None:
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


NOT_STREAMABLE = (
    "Only responses created with background=true can be streamed when retrieved; "
    "this deployment does not run responses in the background."
)


def json_error(status: int, message: str, code: str | None = None, param: str | None = None) -> MemoryReply:
    """An answer a local transport (mock, chat state) gives as its upstream would: the gateway's one envelope."""
    return MemoryReply(status, error_body(message, "invalid_request_error", param, code))


def input_items_page(items: list[dict[str, Any]], query: Mapping[str, str]) -> dict[str, Any]:
    """One page of a stored response's input items, as the Responses API pages them (order, after, limit)."""
    ordered = list(reversed(items)) if query.get("order", "desc") == "desc" else list(items)
    after = query.get("after")
    if after:
        ids = [item.get("id") for item in ordered]
        ordered = ordered[ids.index(after) + 1 :] if after in ids else []
    try:
        limit = max(1, min(100, int(query.get("limit", "20"))))
    except ValueError:
        limit = 20
    page = ordered[:limit]
    return {
        "object": "list",
        "data": page,
        "has_more": len(ordered) > limit,
        "first_id": page[0].get("id") if page else None,
        "last_id": page[-1].get("id") if page else None,
    }


class HttpTransport:
    """The Responses API over HTTP, bytes forwarded as they are (only ``model`` rewritten)."""

    def __init__(self, client: Http1Client) -> None:
        self._client = client

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
        assert dep.endpoint is not None  # every provider but the mock has a base URL
        body = None
        if payload is not None:
            body = raw if raw is not None else orjson.dumps(payload)
        extra: Sequence[tuple[str, str]] = (("X-Client-Request-Id", request_id), ("X-Request-Id", request_id))
        if headers:
            extra = (*extra, *_not_configured(headers, dep.endpoint.header_names))
        return await self._client.send(
            dep.endpoint,
            method,
            path,
            body=body,
            content_type=_JSON if body is not None else None,
            extra_headers=extra,
            query=query,
            pool_key=dep.pool_key,
        )


def _not_configured(headers: Sequence[tuple[str, str]], configured: frozenset[str]) -> list[tuple[str, str]]:
    """The client's headers but those the deployment sets itself (its own win, and are not sent twice)."""
    return [(name, value) for name, value in headers if name.lower() not in configured]


def rewrite_body(payload: dict[str, Any], raw: bytes, updates: Mapping[str, Any]) -> bytes:
    """The client's body with only ``updates`` changed; the raw bytes when nothing changes."""
    for name, value in updates.items():  # a loop, not all(<genexpr>): this runs for every request
        if payload.get(name) != value:
            return orjson.dumps({**payload, **updates})
    return raw
