"""Send a JSON answer (a call without ``stream``) to the client, its response id rewritten.

Small answers (up to :data:`SMALL_ANSWER_BYTES`, nearly all of them) are read whole and parsed
once, which proves them complete and yields their usage; the top-level ``id`` token is then
replaced in place (one copy). A larger answer is never held more than once and never parsed: it
is held only until its top-level ``id`` went by (the first key, in every server known), then
written on piece by piece as it arrives. :class:`~.jsonscan.KeyScanner` finds the id and
``usage`` on the way, and the last piece waits until the whole answer proved to be one complete
JSON object.

Only the outermost object's ``id`` is rewritten: the upstream id's text elsewhere (a field name,
a value, the text of the answer) is left alone. A 2xx answer that starts like a JSON object but
is not one (cut short, garbled) is an upstream error: 502 while nothing was sent yet, a cut
connection (never a clean end) once the answer was on its way.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator, Callable, Mapping

import orjson
from aiohttp import web

from ..errors import UpstreamFailed
from ..http1 import Reply
from ..observability.recording import AttemptOutcome, RequestRecord, Usage
from ..observability.usage import usage_from_mapping, usage_of
from ..upstream.deadlines import Deadline
from ..upstream.executor import Opened
from .jsonscan import STRING_TOKEN, KeyScanner, top_level_string
from .relay import CLIENT_GONE, ClientGone, end_attempt

SMALL_ANSWER_BYTES = 1 << 20
"""Answers up to this size are parsed whole (a few milliseconds at most); larger ones stream."""
_MAX_ID_BYTES = 2048
_USAGE_BYTES = 64 * 1024  # a usage object is a few hundred bytes; more is not read
_RECENT = 2 * 64  # bytes kept from before a piece: a key reported late starts no earlier
_JSON_OBJECT = re.compile(rb"[ \t\r\n]*\{")
_HEAD_ID = re.compile(rb'[ \t\r\n]*\{[ \t\r\n]*"id"[ \t\r\n]*:' + STRING_TOKEN.pattern)
_DECODER = json.JSONDecoder()


class _BadAnswer(Exception):
    """The upstream's 2xx answer is not the complete JSON object it started as."""


async def relay_json(request: web.Request, opened: Opened, record: RequestRecord,
                     make_id: Callable[[str], str] | None, headers: Mapping[str, str],
                     conversation: tuple[bytes, bytes] | None = None) -> web.StreamResponse:
    """``conversation``: (upstream id, gateway id) of the conversation the request named, whose
    ``conversation.id`` in the answer is rewritten too (as is its ``previous_response_id``)."""
    relay = _JsonRelay(request, opened, record, make_id, headers)
    relay.conversation = conversation
    outcome = AttemptOutcome.STREAM_ERROR
    timer = Deadline(opened.deadline - time.monotonic())  # the rest of the attempt's time
    reply = opened.reply
    try:
        if _whole_at_once(reply):  # the common case: one read, no coroutine of its own
            resp: web.StreamResponse = relay.whole(await reply.read())
        else:
            resp = await relay.send()
        outcome = AttemptOutcome.SUCCESS
        return resp
    except asyncio.CancelledError:
        if timer.disarm():  # the deadline fired
            return relay.failed("TimeoutError")
        outcome = AttemptOutcome.CANCELLED  # the client went away: aiohttp cancelled the handler
        relay.client_gone()
        raise
    except (OSError, _BadAnswer) as exc:  # the upstream failed (TimeoutError is an OSError)
        return relay.failed(str(exc) if isinstance(exc, _BadAnswer) else type(exc).__name__)
    except ClientGone:
        outcome = AttemptOutcome.CANCELLED
        return relay.client_gone()
    finally:
        timer.disarm()
        end_attempt(opened, outcome, record)


def _whole_at_once(reply: object) -> bool:
    """Read in one call: replies made in-process (mock, translated), and answers announced small."""
    if not isinstance(reply, Reply):
        return True
    length = reply.headers.get("Content-Length")
    return length is not None and length.isdigit() and int(length) <= SMALL_ANSWER_BYTES


class _JsonRelay:
    __slots__ = ("conversation", "headers", "make_id", "opened", "record", "request", "resp")

    def __init__(self, request: web.Request, opened: Opened, record: RequestRecord,
                 make_id: Callable[[str], str] | None, headers: Mapping[str, str]) -> None:
        self.request = request
        self.opened = opened
        self.record = record
        self.make_id = make_id
        self.headers = headers
        self.resp: web.StreamResponse | None = None
        self.conversation: tuple[bytes, bytes] | None = None

    async def send(self) -> web.StreamResponse:
        """An answer of unknown or large size: whole if it ends within the small size, else streamed."""
        pieces: list[bytes] = []
        size = 0
        chunks = self.opened.reply.chunks()
        async for piece in chunks:
            pieces.append(piece)
            size += len(piece)
            if size > SMALL_ANSWER_BYTES:
                return await self._stream(pieces, chunks)
        return self.whole(pieces[0] if len(pieces) == 1 else b"".join(pieces))

    # -- small answers: whole ------------------------------------------------------------------
    def whole(self, body: bytes) -> web.Response:
        record, reply = self.record, self.opened.reply
        head = _HEAD_ID.match(body)  # the id where servers write it: the first key
        if self.make_id is not None and (head is not None or _JSON_OBJECT.match(body)):
            try:
                parsed = orjson.loads(body)
            except orjson.JSONDecodeError:
                raise _BadAnswer("its answer is not valid JSON") from None
            if parsed.get("object") == "response":
                record.usage = usage_of(parsed)
            if isinstance(parsed.get("id"), str):
                span = head.span(1) if head is not None else top_level_string(body, b"id")
                if span is not None:
                    body, _ = self._rewrite(body, *span)
                body = self._other_ids(body, parsed)
        record.first_token_at = time.monotonic()
        record.response_body = body
        record.status = reply.status
        return web.Response(body=body, status=reply.status, headers=self.headers, content_type=_content_type(reply))

    def _rewrite(self, data: bytes, start: int, end: int) -> tuple[bytes, int]:
        """``data`` with the id token at ``start:end`` signed; and how much longer it got."""
        assert self.make_id is not None
        upstream_id = orjson.loads(data[start:end])
        if not upstream_id.startswith("resp"):
            return data, 0
        gateway_id = self.make_id(upstream_id)
        self.record.response_id = gateway_id
        token = orjson.dumps(gateway_id)
        return data[:start] + token + data[end:], len(token) - (end - start)

    def _other_ids(self, body: bytes, parsed: dict[str, object]) -> bytes:
        """The response's ``previous_response_id`` (the upstream echoes the id it was sent; the
        previous response lives on the same deployment, so its gateway id is made the same way)
        and the named conversation's id, rewritten where they are those fields' values."""
        assert self.make_id is not None
        previous = parsed.get("previous_response_id")
        if isinstance(previous, str) and previous.startswith("resp") and previous != parsed.get("id"):
            span = top_level_string(body, b"previous_response_id")
            if span is not None:
                body = body[:span[0]] + orjson.dumps(self.make_id(previous)) + body[span[1]:]
        conversation = parsed.get("conversation")
        if self.conversation is not None and isinstance(conversation, dict):
            at = _key_value_at(body, b"conversation")
            span = top_level_string(body[at:], b"id") if at is not None else None
            if at is not None and span is not None and body[at + span[0]:at + span[1]] == orjson.dumps(
                    self.conversation[0].decode()):
                body = body[:at + span[0]] + orjson.dumps(self.conversation[1].decode()) + body[at + span[1]:]
        return body

    # -- large answers: streamed -----------------------------------------------------------------
    async def _stream(self, held: list[bytes], chunks: AsyncIterator[bytes]) -> web.StreamResponse:
        """Hold pieces until the top-level id is known, then relay; the last piece waits for the end."""
        track = _Tracker() if self.make_id is not None and _JSON_OBJECT.match(held[0]) else None
        growth = 0
        if track is not None:
            for piece in held:
                track.feed(piece)
            while not track.id_resolved(held):
                more = await anext(chunks, None)
                if more is None:
                    track.finish()  # an id among the last bytes is reported only now
                    break
                held.append(more)
                track.feed(more)
            if track.id_at is not None:
                held, growth = self._rewrite_held(held, track.id_at)
        resp = await self._start(growth)
        pending = held.pop()
        for piece in held:
            await self._write(resp, piece)
        held.clear()
        async for piece in chunks:
            if track is not None:
                track.feed(piece)
            await self._write(resp, pending)
            pending = piece
        if track is not None:
            track.finish()
            if not track.scanner.nesting.closed:
                raise _BadAnswer("its answer ended before the JSON object did")
            self.record.usage = track.usage()
        await self._write(resp, pending)
        self.record.status = self.opened.reply.status
        return resp

    def _rewrite_held(self, held: list[bytes], at: int) -> tuple[list[bytes], int]:
        """Sign the id token that starts at offset ``at`` (after whitespace) of the held pieces."""
        index, offset = 0, 0
        while offset + len(held[index]) <= at:  # the piece where the value starts
            offset += len(held[index])
            index += 1
        last = index
        while last + 1 < len(held) and offset + sum(len(p) for p in held[index:last + 1]) < at + _MAX_ID_BYTES:
            last += 1
        joined = b"".join(held[index:last + 1])
        token = STRING_TOKEN.match(joined, at - offset)
        if token is None:  # not a string: nothing to sign
            return held, 0
        rewritten, growth = self._rewrite(joined, *token.span(1))
        return [*held[:index], rewritten, *held[last + 1:]], growth

    async def _start(self, growth: int) -> web.StreamResponse:
        reply = self.opened.reply
        resp = web.StreamResponse(status=reply.status, headers=self.headers)
        resp.content_type = _content_type(reply)
        length = reply.headers.get("Content-Length", "")
        if length.isdigit():
            resp.content_length = int(length) + growth
        self.resp = resp
        try:
            await resp.prepare(self.request)
        except CLIENT_GONE as exc:
            raise ClientGone from exc
        self.record.first_token_at = time.monotonic()
        return resp

    @staticmethod
    async def _write(resp: web.StreamResponse, data: bytes) -> None:
        try:
            await resp.write(data)
        except CLIENT_GONE as exc:
            raise ClientGone from exc

    # -- endings ---------------------------------------------------------------------------------
    def failed(self, why: str) -> web.StreamResponse:
        """The upstream broke the answer: a 502 if nothing was sent, else the client's connection is cut."""
        record = self.record
        if self.resp is None:
            message = f"{self.opened.dep.name}: the upstream failed while sending its answer ({why})."
            raise UpstreamFailed(message, code="upstream_error", status=502)
        record.error_type = "upstream_stream_error"
        record.status = 502
        transport = self.request.transport
        if transport is not None:
            transport.abort()  # the answer must not look complete to the client
        return self.resp

    def client_gone(self) -> web.StreamResponse:
        self.record.client_disconnected = True
        self.record.status = 499  # nginx's "client closed request"
        return self.resp if self.resp is not None else web.Response(status=499)


class _Tracker:
    """What a streamed answer's scan found: where its top-level id starts, what its usage holds."""

    __slots__ = ("_finished", "_recent", "_seen", "id_at", "scanner", "usage_bytes")

    def __init__(self) -> None:
        self.scanner = KeyScanner((b"id", b"usage"))
        self.id_at: int | None = None
        self.usage_bytes: bytes | None = None
        self._recent = b""  # the last bytes before the current piece
        self._seen = 0  # bytes fed so far
        self._finished = False

    def feed(self, piece: bytes) -> None:
        self._note(self.scanner.feed(piece), piece)
        self._seen += len(piece)
        self._recent = piece[-_RECENT:] if len(piece) >= _RECENT else (self._recent + piece)[-_RECENT:]

    def finish(self) -> None:
        if not self._finished:
            self._finished = True
            self._note(self.scanner.finish(), b"")

    def _note(self, found: list[tuple[bytes, int]], piece: bytes) -> None:
        if self.usage_bytes is not None and len(self.usage_bytes) < _USAGE_BYTES:
            self.usage_bytes += piece[:_USAGE_BYTES - len(self.usage_bytes)]
        for name, at in found:
            if name == b"id" and self.id_at is None:
                self.id_at = at
            elif name == b"usage" and self.usage_bytes is None:
                window = self._recent + piece  # ``at`` is at most _RECENT bytes before this piece
                self.usage_bytes = window[at - (self._seen - len(self._recent)):][:_USAGE_BYTES]

    def id_resolved(self, held: list[bytes]) -> bool:
        """The id's value is complete in the held pieces (or there is no id before them)."""
        return self.id_at is not None and sum(map(len, held)) >= self.id_at + _MAX_ID_BYTES

    def usage(self) -> Usage | None:
        if not self.usage_bytes:
            return None
        text = self.usage_bytes.decode("utf-8", "replace").lstrip(" \t\r\n")
        try:
            value, _ = _DECODER.raw_decode(text)
        except ValueError:
            return None
        return usage_from_mapping(value)


def _key_value_at(body: bytes, key: bytes) -> int | None:
    """Where the value of the outermost object's ``key`` starts, or None."""
    scanner = KeyScanner((key,))
    found = [*scanner.feed(body), *scanner.finish()]
    return found[0][1] if found else None


def _content_type(reply: object) -> str:
    headers: Mapping[str, str] = getattr(reply, "headers", {})
    return headers.get("Content-Type", "application/json").split(";")[0]
