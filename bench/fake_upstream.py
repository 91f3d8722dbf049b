"""A cheap fake OpenAI Responses upstream for the benchmark.

``POST /v1/responses`` (and ``/responses``) answers with a completed Response object, or with
the real server-sent event sequence when the body says ``"stream": true``::

    response.created, response.in_progress, response.output_item.added,
    response.content_part.added, N x response.output_text.delta, response.output_text.done,
    response.content_part.done, response.output_item.done, response.completed (with usage)

The model name picks the pacing: ``paced-20`` sleeps 20 ms before each delta, anything else
streams at once. Every answer is rendered to bytes once per (model, stream) and cached, and the
server speaks HTTP/1.1 straight on an asyncio protocol (uvloop), so the upstream costs a few
microseconds per request and leaves its core to the load generator.

    python bench/fake_upstream.py --port 18001 --deltas 50 --cpu 1
"""

from __future__ import annotations

import argparse
import asyncio
import os
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, cast

import orjson

CREATED_AT = 1_760_000_000
INPUT_TOKENS = 12
PACED_PREFIX = "paced-"


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def _sse(event: dict[str, Any]) -> bytes:
    return b"event: " + event["type"].encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"


def _response(model: str, status: str, output: list[Any], usage: Any) -> dict[str, Any]:
    return {
        "id": "resp_bench0000000000000000000001",
        "object": "response",
        "created_at": CREATED_AT,
        "status": status,
        "error": None,
        "incomplete_details": None,
        "instructions": None,
        "max_output_tokens": None,
        "model": model,
        "output": output,
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "reasoning": {"effort": None, "summary": None},
        "store": True,
        "temperature": 1.0,
        "text": {"format": {"type": "text"}},
        "tool_choice": "auto",
        "tools": [],
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": usage,
        "user": None,
        "metadata": {},
    }


@dataclass(frozen=True)
class Rendered:
    """Precomputed wire bytes of one answer."""

    head: bytes  # status line + headers (+ whole body when not paced)
    deltas: tuple[bytes, ...]  # paced streams: one chunk per delta, written on a timer
    tail: bytes  # paced streams: the closing events and the last chunk
    delay: float  # seconds before each delta; 0 = everything is in ``head``


def render(model: str, stream: bool, n_deltas: int) -> Rendered:
    """All bytes of one answer for ``model``."""
    pieces = [f" tok{i}" for i in range(n_deltas)]
    text = "".join(pieces)
    usage = {
        "input_tokens": INPUT_TOKENS,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": n_deltas,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": INPUT_TOKENS + n_deltas,
    }
    part = {"type": "output_text", "text": text, "annotations": []}
    item_id = "msg_bench0000000000000000000001"
    done_item = {
        "id": item_id,
        "type": "message",
        "status": "completed",
        "role": "assistant",
        "content": [part],
    }
    if not stream:
        body = orjson.dumps(_response(model, "completed", [done_item], usage))
        head = (
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
            b"x-request-id: req_bench\r\n\r\n%s" % (len(body), body)
        )
        return Rendered(head, (), b"", 0.0)
    where = {"item_id": item_id, "output_index": 0, "content_index": 0}
    in_progress = _response(model, "in_progress", [], None)
    opening = [
        {"type": "response.created", "response": in_progress},
        {"type": "response.in_progress", "response": in_progress},
        {
            "type": "response.output_item.added",
            "output_index": 0,
            "item": {**done_item, "status": "in_progress", "content": []},
        },
        {"type": "response.content_part.added", **where, "part": {**part, "text": ""}},
    ]
    deltas = [{"type": "response.output_text.delta", **where, "delta": p, "logprobs": []} for p in pieces]
    closing = [
        {"type": "response.output_text.done", **where, "text": text, "logprobs": []},
        {"type": "response.content_part.done", **where, "part": part},
        {"type": "response.output_item.done", "output_index": 0, "item": done_item},
        {"type": "response.completed", "response": _response(model, "completed", [done_item], usage)},
    ]
    seq = iter(range(1_000_000))
    chunks = [
        [_chunk(_sse({**e, "sequence_number": next(seq)})) for e in group] for group in (opening, deltas, closing)
    ]
    head = (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\n"
        b"Cache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n"
        b"x-request-id: req_bench\r\n\r\n" + b"".join(chunks[0])
    )
    tail = b"".join(chunks[2]) + b"0\r\n\r\n"
    delay = int(model[len(PACED_PREFIX) :]) / 1000 if model.startswith(PACED_PREFIX) else 0.0
    if delay == 0.0:
        return Rendered(head + b"".join(chunks[1]) + tail, (), b"", 0.0)
    return Rendered(head, tuple(chunks[1]), tail, delay)


NOT_FOUND = b"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 9\r\n\r\nnot found"
OK_TEXT = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"
BAD = b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: 3\r\nConnection: close\r\n\r\nbad"


def split_request(buf: bytearray) -> tuple[bytes, bytes, int] | None:
    """(head, body, bytes used) of the first complete request in ``buf``; None if incomplete.

    Raises ValueError on a malformed request. Handles Content-Length and chunked bodies.
    """
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = bytes(buf[:end])
    lower = head.lower()
    start = end + 4
    cl = lower.find(b"\r\ncontent-length:")
    if cl >= 0:
        line_end = lower.find(b"\r\n", cl + 2)
        size = int(lower[cl + 17 : line_end if line_end >= 0 else None])
        if len(buf) < start + size:
            return None
        return head, bytes(buf[start : start + size]), start + size
    if b"\r\ntransfer-encoding: chunked" not in lower:
        return head, b"", start
    chunked = _chunked_body(buf, start)
    return None if chunked is None else (head, *chunked)


def _chunked_body(buf: bytearray, pos: int) -> tuple[bytes, int] | None:
    """(body, end offset) of a complete chunked body starting at ``pos``; None if incomplete."""
    body = bytearray()
    while True:
        nl = buf.find(b"\r\n", pos)
        if nl < 0:
            return None
        size = int(bytes(buf[pos:nl]).split(b";")[0], 16)
        if size == 0:
            return (bytes(body), nl + 4) if len(buf) >= nl + 4 else None
        if len(buf) < nl + 2 + size + 2:
            return None
        body += buf[nl + 2 : nl + 2 + size]
        pos = nl + 2 + size + 2


class UpstreamProtocol(asyncio.Protocol):
    """One client connection; requests are answered in order (pipelining allowed)."""

    def __init__(self, answer: Callable[[str, bool], Rendered]) -> None:
        self.answer = answer
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None
        self.busy = False  # a paced stream is being written

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if not self.busy:
            self.process()

    def process(self) -> None:
        while self.transport is not None and not self.busy:
            try:
                parts = split_request(self.buf)
            except ValueError:
                self.transport.write(BAD)
                self.transport.close()
                return
            if parts is None:
                return
            head, body, used = parts
            del self.buf[:used]
            self.handle(head, body)

    def handle(self, head: bytes, body: bytes) -> None:
        assert self.transport is not None
        line = head[: head.find(b"\r\n")] if b"\r\n" in head else head
        method, _, rest = line.partition(b" ")
        path = rest.partition(b" ")[0].partition(b"?")[0]
        if method == b"POST" and path in (b"/v1/responses", b"/responses"):
            try:
                req = orjson.loads(body)
                model, stream = str(req["model"]), bool(req.get("stream", False))
            except (orjson.JSONDecodeError, KeyError, TypeError):
                self.transport.write(BAD)
                self.transport.close()
                return
            rendered = self.answer(model, stream)
            self.transport.write(rendered.head)
            if rendered.delay:
                self.busy = True
                asyncio.get_running_loop().call_later(rendered.delay, self.tick, rendered, 0)
        elif method == b"GET" and path in (b"/healthz", b"/readyz"):
            self.transport.write(OK_TEXT)
        else:
            self.transport.write(NOT_FOUND)

    def tick(self, rendered: Rendered, index: int) -> None:
        """Write delta ``index`` of a paced stream, then schedule the next one."""
        if self.transport is None:
            return
        self.transport.write(rendered.deltas[index])
        if index + 1 < len(rendered.deltas):
            asyncio.get_running_loop().call_later(rendered.delay, self.tick, rendered, index + 1)
            return
        self.transport.write(rendered.tail)
        self.busy = False
        self.process()


async def serve(host: str, port: int, n_deltas: int) -> None:
    cache: dict[tuple[str, bool], Rendered] = {}

    def answer(model: str, stream: bool) -> Rendered:
        key = (model, stream)
        rendered = cache.get(key)
        if rendered is None:
            if len(cache) > 64:
                cache.clear()
            rendered = cache[key] = render(model, stream, n_deltas)
        return rendered

    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: UpstreamProtocol(answer), host, port, backlog=4096, reuse_address=True)
    async with server:
        await server.serve_forever()


def run_fast(coro: Coroutine[Any, Any, None]) -> None:
    """Run ``coro`` on uvloop when it is installed, else on the default loop."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(coro)
        return
    uvloop.run(coro)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=18001)
    parser.add_argument("--deltas", type=int, default=50, help="delta events per stream")
    parser.add_argument("--cpu", type=int, default=None, help="pin this process to one core")
    args = parser.parse_args(argv)
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    try:
        run_fast(serve(args.host, args.port, args.deltas))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
