"""A Responses upstream on a raw loopback socket that fails in the ways real ones do.

Built on :class:`raw_http_server.RawHttpServer`, so every byte is under the test's control. The
current :class:`Fault` (``upstream.fault``, changeable between requests) decides what each request
gets: a faithful answer (a JSON response object, or the real event sequence when the request says
``"stream": true``), or a failure at one stage of the exchange: before the headers, in the middle
of a body or a stream, a status the gateway must not pass on, a body shorter than its
``Content-Length``, silence, or an upstream that never reads the request at all (so a large body
stays stuck in the gateway's send buffer). Answers carry the id ``upstream.response_id`` (ids that
are substrings of field names or values, such as ``resp``, test the gateway's id rewrite) and can
be made huge (``upstream.answer_text``).

Used by the robustness tests and by ``bench/faults.py``.
"""

from __future__ import annotations

import asyncio
import enum
from typing import Any

import orjson

from raw_http_server import RawConnection, RawHttpServer, RawRequest, chunk, response

CREATED_AT = 1_760_000_000


class Fault(enum.Enum):
    NONE = "none"
    """Answer properly (keep-alive)."""
    RESET_BEFORE_HEADERS = "reset-before-headers"
    """Read the request, then close with a TCP reset."""
    RESET_MID_BODY = "reset-mid-body"
    """Send the headers and part of the JSON body, then reset."""
    SHORT_BODY = "short-body"
    """Send less than the ``Content-Length`` announced, then close cleanly (FIN)."""
    HANG = "hang"
    """Read the request, never answer (until the gateway gives up)."""
    NEVER_READ = "never-read"
    """Accept the connection but never read from it: a large request body cannot be sent."""
    STATUS_500 = "status-500"
    STATUS_400 = "status-400"
    """A client error: the gateway passes it through."""
    REDIRECT = "redirect"
    """``301`` with a ``Location``: never a valid answer of a Responses upstream."""
    RESET_MID_STREAM = "reset-mid-stream"
    """Send the opening events and a few deltas, then reset."""
    STALL_MID_STREAM = "stall-mid-stream"
    """Send the opening events and a few deltas, then go silent."""


def response_object(rid: str, model: str, text: str, *, status: str = "completed",
                    with_output: bool = True) -> dict[str, Any]:
    """A Responses API ``response`` object in the field order OpenAI's servers use."""
    usage = {"input_tokens": 12, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": 7,
             "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 19}
    message = {"id": "msg_" + rid, "type": "message", "status": "completed", "role": "assistant",
               "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]}
    return {
        "id": rid, "object": "response", "created_at": CREATED_AT, "status": status, "background": False,
        "error": None, "incomplete_details": None, "instructions": None, "max_output_tokens": None,
        "model": model, "output": [message] if with_output else [], "parallel_tool_calls": True,
        "previous_response_id": None, "reasoning": {"effort": None, "summary": None}, "store": True,
        "temperature": 1.0, "text": {"format": {"type": "text"}}, "tool_choice": "auto", "tools": [],
        "top_p": 1.0, "truncation": "disabled", "usage": usage if status == "completed" else None,
        "user": None, "metadata": {},
    }


def stream_events(rid: str, model: str, text: str) -> list[bytes]:
    """The event sequence of a streamed response, one SSE block per event."""
    final = response_object(rid, model, text)
    opening = response_object(rid, model, text, status="in_progress", with_output=False)
    item = final["output"][0]
    where = {"item_id": item["id"], "output_index": 0, "content_index": 0}
    part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
    words = text.split(" ")
    events: list[dict[str, Any]] = [
        {"type": "response.created", "response": opening},
        {"type": "response.in_progress", "response": opening},
        {"type": "response.output_item.added", "output_index": 0,
         "item": {**item, "status": "in_progress", "content": []}},
        {"type": "response.content_part.added", **where, "part": part},
        *({"type": "response.output_text.delta", **where, "delta": w if i == 0 else " " + w, "logprobs": []}
          for i, w in enumerate(words)),
        {"type": "response.output_text.done", **where, "text": text, "logprobs": []},
        {"type": "response.content_part.done", **where, "part": {**part, "text": text}},
        {"type": "response.output_item.done", "output_index": 0, "item": item},
        {"type": "response.completed", "response": final},
    ]
    return [b"event: " + e["type"].encode() + b"\ndata: " + orjson.dumps({**e, "sequence_number": n}) + b"\n\n"
            for n, e in enumerate(events)]


_SSE_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
_DELTAS_BEFORE_FAULT = 3
_SLICE = 1 << 20


class MisbehavingUpstream:
    """``async with MisbehavingUpstream() as up:`` then point a deployment at ``up.url()``."""

    def __init__(self, fault: Fault = Fault.NONE, *, response_id: str = "resp_upstream0001",
                 answer_text: str = "Seven words from a misbehaving upstream.",
                 answer_body: bytes | None = None) -> None:
        self.fault = fault
        self.response_id = response_id
        self.answer_text = answer_text
        self.answer_body = answer_body
        """When set, every JSON answer is exactly these bytes (built once: huge answers are cheap)."""
        self.by_model: dict[str, Fault] = {}
        """Faults by the request's ``model`` (deployments with distinct upstream models get distinct
        treatment from one server); other models get ``fault``."""
        self.server = RawHttpServer(self._serve)
        self.answered = 0
        """Requests that got a complete, proper answer."""
        self.cut = asyncio.Event()
        """Set when the gateway closed a connection while a JSON answer was being sent on it."""

    async def __aenter__(self) -> MisbehavingUpstream:
        await self.server.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.server.close()

    def url(self) -> str:
        return self.server.url("/v1")

    def json_body(self, model: str = "up-model") -> bytes:
        if self.answer_body is not None:
            return self.answer_body
        return orjson.dumps(response_object(self.response_id, model, self.answer_text))

    async def _serve(self, conn: RawConnection) -> None:
        while True:
            if self.fault is Fault.NEVER_READ:  # until the server closes; the gateway aborts its side
                await asyncio.Event().wait()
            request = await conn.read_request()
            if request is None:
                return
            if not await self._answer(conn, request, self._fault_for(request)):
                return

    def _fault_for(self, request: RawRequest) -> Fault:
        """The fault for this request, chosen when it arrived."""
        if self.by_model and request.body.startswith(b"{"):
            model = orjson.loads(request.body).get("model")
            if isinstance(model, str) and model in self.by_model:
                return self.by_model[model]
        return self.fault

    async def _answer(self, conn: RawConnection, request: RawRequest, fault: Fault) -> bool:
        """Answer one request; False when the connection is finished."""
        if fault is Fault.RESET_BEFORE_HEADERS:
            conn.reset()
            return False
        if fault is Fault.HANG:
            await conn.wait_eof()
            return False
        if fault in _STATUS_ANSWERS:
            await conn.send(_STATUS_ANSWERS[fault])
            return True
        payload = orjson.loads(request.body) if request.body.startswith(b"{") else {}
        model = str(payload.get("model", "up-model"))
        if payload.get("stream") is True:
            return await self._stream(conn, model, fault)
        body = self.json_body(model)
        if fault is Fault.RESET_MID_BODY:
            await conn.send(response(body, headers=[("Content-Type", "application/json")])[:-len(body) // 2])
            conn.reset()
            return False
        if fault is Fault.SHORT_BODY:
            await conn.send(response(body, headers=[("Content-Type", "application/json")])[:-10])
            conn.send_fin()
            await conn.wait_eof()
            return False
        await conn.send(response(headers=[("Content-Type", "application/json"),
                                          ("Content-Length", str(len(body)))], length=False))
        view = memoryview(body)  # apart from the head and in slices: a huge body is never copied whole
        try:
            for at in range(0, len(body), _SLICE):
                await conn.send(view[at:at + _SLICE])
        except ConnectionError:
            self.cut.set()
            raise
        self.answered += 1
        return True

    async def _stream(self, conn: RawConnection, model: str, fault: Fault) -> bool:
        events = stream_events(self.response_id, model, self.answer_text)
        if fault in (Fault.RESET_MID_STREAM, Fault.STALL_MID_STREAM):
            await conn.send(_SSE_HEAD + b"".join(chunk(e) for e in events[:4 + _DELTAS_BEFORE_FAULT]))
            if fault is Fault.RESET_MID_STREAM:
                conn.reset()
            else:
                await conn.wait_eof()
            return False
        await conn.send(_SSE_HEAD + b"".join(chunk(e) for e in events) + b"0\r\n\r\n")
        self.answered += 1
        return True


_ERROR_JSON = [("Content-Type", "application/json")]
_STATUS_ANSWERS = {
    Fault.STATUS_500: response(b'{"error":{"message":"upstream exploded","type":"server_error","param":null,'
                               b'"code":null}}', "500 Internal Server Error", _ERROR_JSON),
    Fault.STATUS_400: response(b'{"error":{"message":"bad input","type":"invalid_request_error",'
                               b'"param":"input","code":null}}', "400 Bad Request", _ERROR_JSON),
    Fault.REDIRECT: response(b"", "301 Moved Permanently", [("Location", "http://127.0.0.1:9/elsewhere")]),
}

