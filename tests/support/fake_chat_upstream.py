"""A fake OpenAI-compatible ``/v1/chat/completions`` server emitting real chat chunks.

Scriptable per request (text deltas, tool calls whose arguments arrive split across chunks,
usage in the last chunk, 429/500 errors, hangs, stalls and drops mid-stream) and recording every
request body it received. Used as ``async with FakeChatUpstream() as fake: fake.base_url``.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

DEFAULT_USAGE: dict[str, Any] = {
    "prompt_tokens": 21,
    "completion_tokens": 9,
    "total_tokens": 30,
    "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
    "completion_tokens_details": {
        "reasoning_tokens": 0,
        "audio_tokens": 0,
        "accepted_prediction_tokens": 0,
        "rejected_prediction_tokens": 0,
    },
}


@dataclass
class ToolCallScript:
    name: str
    arguments: list[str]
    """Argument fragments; each goes out in its own chunk."""
    call_id: str = ""
    """Defaults to ``call_<n>``."""


@dataclass
class ChatScript:
    """What the fake answers to one request."""

    text: list[str] = field(default_factory=lambda: ["Hello", " from", " chat", "."])
    tool_calls: list[ToolCallScript] = field(default_factory=list)
    refusal: list[str] = field(default_factory=list)
    finish_reason: str | None = None
    """Defaults to ``tool_calls`` when there are tool calls, else ``stop``."""
    usage: dict[str, Any] | None = field(default_factory=lambda: dict(DEFAULT_USAGE))
    """Sent in the last chunk (when the client asked for it) or in the body; None = omit."""
    status: int = 200
    error_message: str = "fake upstream error"
    retry_after: str | None = None
    hang: bool = False
    """Never answer (until the client goes away or the fake closes)."""
    stall_after_chunks: int | None = None
    """Send this many chunks, then go silent without closing."""
    drop_after_chunks: int | None = None
    """Send this many chunks, then cut the connection (no ``[DONE]``)."""
    chunk_delay_seconds: float = 0.0
    """Pause between chunks (slow tokens)."""


class FakeChatUpstream:
    """The fake server. ``requests`` holds every JSON body received, in order."""

    def __init__(self, default: ChatScript | None = None, model_echo: str | None = None) -> None:
        self.default = default or ChatScript()
        self.model_echo = model_echo
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.disconnects = 0
        self.disconnected = asyncio.Event()
        self._scripts: deque[ChatScript] = deque()
        self._release = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._port = 0

    # --- lifecycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> FakeChatUpstream:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._handle)
        # handler_cancellation: a client that goes away cancels the handler, which we record.
        self._runner = web.AppRunner(app, handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self._port = int(self._runner.addresses[0][1])

    async def close(self) -> None:
        self._release.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def base_url(self) -> str:
        """Base URL including ``/v1``, as a deployment's ``baseUrl``."""
        return f"http://127.0.0.1:{self._port}/v1"

    def script(self, *scripts: ChatScript) -> None:
        """Queue answers for the next requests; the default answers once the queue is empty."""
        self._scripts.extend(scripts)

    # --- serving -----------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = orjson.loads(await request.read())
        self.requests.append(body)
        self.headers.append(dict(request.headers))
        script = self._scripts.popleft() if self._scripts else self.default
        try:
            if script.hang:
                await self._release.wait()
                raise web.HTTPServiceUnavailable()
            if script.status != 200:
                return self._error(script)
            chunks = build_chunks(script, body, self.model_echo)
            if body.get("stream"):
                return await self._stream(request, script, chunks)
            return web.Response(
                body=orjson.dumps(build_completion(script, body, self.model_echo)),
                content_type="application/json",
            )
        except asyncio.CancelledError:
            self.disconnects += 1
            self.disconnected.set()
            raise

    def _error(self, script: ChatScript) -> web.Response:
        kind = "rate_limit_exceeded" if script.status == 429 else "server_error"
        error = {"message": script.error_message, "type": kind, "param": None, "code": kind}
        headers = {"Retry-After": script.retry_after} if script.retry_after else {}
        return web.Response(
            status=script.status,
            body=orjson.dumps({"error": error}),
            content_type="application/json",
            headers=headers,
        )

    async def _stream(
        self, request: web.Request, script: ChatScript, chunks: list[dict[str, Any]]
    ) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for sent, chunk in enumerate(chunks):
            if sent == script.drop_after_chunks:
                assert request.transport is not None
                request.transport.close()
                return response
            if sent == script.stall_after_chunks:
                await self._release.wait()
                return response
            if script.chunk_delay_seconds and sent:
                await asyncio.sleep(script.chunk_delay_seconds)
            await response.write(b"data: " + orjson.dumps(chunk) + b"\n\n")
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response


def build_chunks(script: ChatScript, body: dict[str, Any], model: str | None = None) -> list[dict[str, Any]]:
    """The ``chat.completion.chunk`` objects OpenAI would send for ``script``."""
    base = {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model or body.get("model", "fake"),
        "system_fingerprint": "fp_fake",
        "service_tier": "default",
    }
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

    def chunk(delta: dict[str, Any], finish: str | None = None, logprobs: Any = None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "logprobs": logprobs, "finish_reason": finish}
        extra = {"usage": None} if include_usage else {}
        return {**base, "choices": [choice], **extra}

    chunks = [chunk({"role": "assistant", "content": "", "refusal": None})]
    for text in script.text:
        chunks.append(
            chunk(
                {"content": text},
                logprobs={"content": _logprobs(text), "refusal": None} if body.get("logprobs") else None,
            )
        )
    for text in script.refusal:
        chunks.append(chunk({"refusal": text}))
    for index, call in enumerate(script.tool_calls):
        opening = {
            "index": index,
            "id": call.call_id or f"call_{index}",
            "type": "function",
            "function": {"name": call.name, "arguments": ""},
        }
        chunks.append(chunk({"tool_calls": [opening]}))
        for fragment in call.arguments:
            chunks.append(chunk({"tool_calls": [{"index": index, "function": {"arguments": fragment}}]}))
    chunks.append(chunk({}, finish=_finish_reason(script)))
    if include_usage:
        chunks.append({**base, "choices": [], "usage": script.usage})
    return chunks


def build_completion(script: ChatScript, body: dict[str, Any], model: str | None = None) -> dict[str, Any]:
    """The non-streaming ``chat.completion`` for ``script``."""
    message: dict[str, Any] = {
        "role": "assistant",
        "content": "".join(script.text) or None,
        "refusal": "".join(script.refusal) or None,
        "annotations": [],
    }
    if script.tool_calls:
        message["tool_calls"] = [
            {
                "id": call.call_id or f"call_{index}",
                "type": "function",
                "function": {"name": call.name, "arguments": "".join(call.arguments)},
            }
            for index, call in enumerate(script.tool_calls)
        ]
    logprobs = None
    if body.get("logprobs"):
        logprobs = {"content": [_logprobs(t)[0] for t in script.text], "refusal": None}
    completion: dict[str, Any] = {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model or body.get("model", "fake"),
        "system_fingerprint": "fp_fake",
        "service_tier": "default",
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": logprobs,
                "finish_reason": _finish_reason(script),
            }
        ],
    }
    if script.usage is not None:
        completion["usage"] = script.usage
    return completion


def _finish_reason(script: ChatScript) -> str:
    if script.finish_reason is not None:
        return script.finish_reason
    return "tool_calls" if script.tool_calls else "stop"


def _logprobs(text: str) -> list[dict[str, Any]]:
    top = [{"token": text, "logprob": -0.25, "bytes": list(text.encode())}]
    return [{"token": text, "logprob": -0.25, "bytes": list(text.encode()), "top_logprobs": top}]


async def sse_data(lines: AsyncIterable[bytes]) -> AsyncIterator[dict[str, Any]]:
    """Parse a chat SSE body (``data: {...}`` lines until ``[DONE]``) into chunk dicts."""
    async for raw in lines:
        line = raw.strip()
        if not line.startswith(b"data:"):
            continue
        payload = line[5:].strip()
        if payload == b"[DONE]":
            return
        yield orjson.loads(payload)
