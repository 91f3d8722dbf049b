"""An upstream that quotes the credentials it received back, wherever upstreams put text.

Some providers and proxies answer a bad request with the request's headers in the message
("Incorrect API key provided: Bearer sk-…", a debug dump of the headers). This fake does that
on every path the gateway passes upstream text on: a 4xx JSON or text body (Responses and
Chat Completions), an ``error`` event or a ``response.failed`` event in a Responses stream, and
an error chunk in a chat stream. The key is written the way real JSON encoders write it:
``json`` (Python's ``json.dumps``: ``\\"``, ``\\\\``, ``\\uXXXX``), ``slashes`` (PHP: ``\\/``),
``html`` (Go: ``<`` ``>`` ``&`` as ``\\u003c``…) or ``text`` (raw bytes, ``text/plain``).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

_HTML = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026"}


@dataclass
class Echo:
    status: int = 400
    where: str = "body"
    """``body`` (an error answer), ``stream-error`` (an ``error`` event after ``response.created``),
    ``stream-failed`` (a ``response.failed`` event), ``chat-stream`` (a chat error chunk), or, for a
    server that echoes even when it succeeds, ``ok`` (a completed response, JSON or streamed, whose
    metadata quotes the headers)."""
    style: str = "json"


def encode(value: Any, style: str) -> bytes:
    text = json.dumps(value)
    if style == "slashes":
        text = text.replace("/", "\\/")
    elif style == "html":
        text = "".join(_HTML.get(ch, ch) for ch in text)
    return text.encode()


class EchoingUpstream:
    def __init__(self) -> None:
        self.echo = Echo()
        self.received: list[str] = []
        """Credential header values (``Authorization``, ``api-key``) of every request."""
        self.quote_headers: tuple[str, ...] = ()
        """Further request headers quoted as ``name=value``."""
        self.server: TestServer | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/responses", self._create)
        app.router.add_get("/v1/responses/{rid}", self._retrieve)
        app.router.add_post("/v1/chat/completions", self._chat)
        self.server = TestServer(app, host="127.0.0.1")
        await self.server.start_server()

    async def close(self) -> None:
        if self.server is not None:
            await self.server.close()

    @property
    def base_url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.port}/v1"

    def _quote(self, request: web.Request) -> str:
        auth = request.headers.get("Authorization", "")
        api_key = request.headers.get("api-key", "")
        self.received += [value for value in (auth, api_key) if value]
        bare = auth.partition(" ")[2] or api_key
        extra = "".join(f" {name}={request.headers.get(name)}" for name in self.quote_headers)
        return (
            f"Invalid request. Received headers: {{'authorization': '{auth}', 'api-key': '{api_key}'}}{extra}; "
            f"the key {bare} is not allowed to use this parameter."
        )

    def _error(self, request: web.Request) -> web.Response:
        message = self._quote(request)
        if self.echo.style == "text":
            return web.Response(status=self.echo.status, text=message, content_type="text/plain")
        error = {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": None}}
        return web.Response(
            status=self.echo.status, body=encode(error, self.echo.style), content_type="application/json"
        )

    async def _create(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        if self.echo.where == "body":
            return self._error(request)
        if self.echo.where == "ok":
            return await self._succeed(request, body)
        message = self._quote(request)
        response = {
            "id": "resp_echo01",
            "object": "response",
            "created_at": int(time.time()),
            "status": "in_progress",
            "error": None,
            "model": body.get("model"),
            "output": [],
        }
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        await self._event(
            resp, "response.created", {"type": "response.created", "sequence_number": 0, "response": response}
        )
        if self.echo.where == "stream-error":
            await self._event(
                resp,
                "error",
                {"type": "error", "code": "invalid_request", "message": message, "param": None, "sequence_number": 1},
            )
        else:
            failed = {**response, "status": "failed", "error": {"code": "server_error", "message": message}}
            await self._event(
                resp, "response.failed", {"type": "response.failed", "sequence_number": 1, "response": failed}
            )
        await resp.write_eof()
        return resp

    async def _succeed(self, request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        text = {"type": "output_text", "text": "Hello.", "annotations": []}
        response = {
            "id": "resp_echo02",
            "object": "response",
            "created_at": int(time.time()),
            "status": "completed",
            "error": None,
            "model": body.get("model"),
            "metadata": {"received": self._quote(request)},
            "output": [
                {"type": "message", "id": "msg_1", "status": "completed", "role": "assistant", "content": [text]}
            ],
            "usage": {"input_tokens": 1, "output_tokens": 1, "total_tokens": 2},
        }
        if not body.get("stream"):
            return web.Response(body=encode(response, self.echo.style), content_type="application/json")
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        created = {**response, "status": "in_progress", "output": [], "usage": None}
        await self._event(
            resp, "response.created", {"type": "response.created", "sequence_number": 0, "response": created}
        )
        await self._event(
            resp, "response.completed", {"type": "response.completed", "sequence_number": 1, "response": response}
        )
        await resp.write_eof()
        return resp

    async def _event(self, resp: web.StreamResponse, kind: str, data: dict[str, Any]) -> None:
        await resp.write(f"event: {kind}\ndata: ".encode() + encode(data, self.echo.style) + b"\n\n")

    async def _retrieve(self, request: web.Request) -> web.Response:
        return self._error(request)

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        if self.echo.where != "chat-stream":
            return self._error(request)
        message = self._quote(request)
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        first = {
            "id": "chatcmpl-echo",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": body.get("model"),
            "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hi"}, "finish_reason": None}],
        }
        await resp.write(b"data: " + encode(first, self.echo.style) + b"\n\n")
        error = {"error": {"message": message, "type": "server_error", "code": "server_error"}}
        await resp.write(b"data: " + encode(error, self.echo.style) + b"\n\n")
        await resp.write_eof()
        return resp
