"""Send a JSON answer (a call without ``stream``) to the client, its ids rewritten.

The answer's top-level ``id``, ``previous_response_id`` and the id of the ``conversation`` the
request named (the field's value, or its object's ``id``) become the gateway's ids.

Small answers (up to :data:`SMALL_ANSWER_BYTES`, nearly all of them) are read whole and parsed
once, which proves them complete and yields their usage; the id tokens are then replaced in
place. A larger answer is never held more than once and never parsed: it is held only until its
top-level ``id`` (the first key, in every server known) and the id fields found before it were
rewritten, then written on piece by piece as it arrives, each later id field held back only
until its value went by (:mod:`.large_answer`). Its ``Content-Length`` is the upstream's plus the
rewrites' growth, known when the answer starts out, unless a field still to come may need a
rewrite (a ``previous_response_id`` after the output, as OpenAI orders the fields, when the call
may carry one; a conversation the request named): such an answer goes out chunked. The last
piece waits until the whole answer proved to be one complete JSON object.

Only those fields of the outermost object are rewritten: the upstream id's text elsewhere (a field
name, a value, the text of the answer) is left alone. A 2xx answer that starts like a JSON object
but is not one (cut short, garbled) is an upstream error: 502 while nothing was sent yet, a cut
connection (never a clean end) once the answer was on its way. So is one sent with a fixed length
that then carries a ``previous_response_id`` its request did not name: its length cannot change
any more, and the upstream's id must not reach the client.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Callable, Mapping

import orjson
from aiohttp import web

from ..errors import UpstreamFailed
from ..http1 import Reply
from ..observability.recording import AttemptOutcome, RequestRecord
from ..observability.usage import usage_of
from ..upstream.deadlines import Deadline
from ..upstream.executor import Opened
from .jsonscan import STRING_TOKEN, KeyScanner, top_level_string
from .large_answer import CONVERSATION, ID, PREVIOUS, AnswerPieces, BadAnswer
from .relay import CLIENT_GONE, ClientGone, end_attempt

SMALL_ANSWER_BYTES = 1 << 20
"""Answers up to this size are parsed whole (a few milliseconds at most); larger ones stream."""
_JSON_OBJECT = re.compile(rb"[ \t\r\n]*\{")
_HEAD_ID = re.compile(rb'[ \t\r\n]*\{[ \t\r\n]*"id"[ \t\r\n]*:' + STRING_TOKEN.pattern)


async def relay_json(
    request: web.Request,
    opened: Opened,
    record: RequestRecord,
    make_id: Callable[[str], str] | None,
    headers: Mapping[str, str],
    conversation: tuple[bytes, bytes] | None = None,
    *,
    previous: bool = True,
) -> web.StreamResponse:
    """``conversation``: (upstream id, gateway id) of the conversation the request named, whose
    id in the answer's ``conversation`` is rewritten too (as is its ``previous_response_id``).
    ``previous``: whether the answer may carry a ``previous_response_id`` (False when the request
    to create it named none: a faithful upstream then answers null)."""
    relay = _JsonRelay(request, opened, record, make_id, headers)
    if conversation is not None:
        relay.conversation = (orjson.dumps(conversation[0].decode()), orjson.dumps(conversation[1].decode()))
    relay.previous = previous
    outcome = AttemptOutcome.STREAM_ERROR
    timer = Deadline(opened.deadline - time.monotonic())  # the rest of the attempt's time
    reply = opened.reply
    try:
        # The common case, read in one call: a reply made in-process (mock, translated), or an answer
        # announced small (written out here, not in a helper: this runs for every JSON answer).
        length = reply.headers.get("Content-Length") if isinstance(reply, Reply) else "0"
        if length is not None and length.isdigit() and int(length) <= SMALL_ANSWER_BYTES:
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
    except (OSError, BadAnswer) as exc:  # the upstream failed (TimeoutError is an OSError)
        return relay.failed(str(exc) if isinstance(exc, BadAnswer) else type(exc).__name__)
    except ClientGone:
        outcome = AttemptOutcome.CANCELLED
        return relay.client_gone()
    finally:
        timer.disarm()
        end_attempt(opened, outcome, record)


class _JsonRelay:
    __slots__ = ("conversation", "headers", "make_id", "opened", "previous", "record", "request", "resp", "upstream_id")

    def __init__(
        self,
        request: web.Request,
        opened: Opened,
        record: RequestRecord,
        make_id: Callable[[str], str] | None,
        headers: Mapping[str, str],
    ) -> None:
        self.request = request
        self.opened = opened
        self.record = record
        self.make_id = make_id
        self.headers = headers
        self.resp: web.StreamResponse | None = None
        self.conversation: tuple[bytes, bytes] | None = None
        """(upstream token, gateway token) of the conversation the request named: JSON strings."""
        self.previous = True
        self.upstream_id: str | None = None  # the answer's own id, once seen

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
        record, reply, make_id = self.record, self.opened.reply, self.make_id
        head = _plain_head_id(body) if make_id is not None else None
        if make_id is not None and (head is not None or _JSON_OBJECT.match(body)):
            try:
                parsed = orjson.loads(body)
            except orjson.JSONDecodeError:
                raise BadAnswer("its answer is not valid JSON") from None
            if parsed.get("object") == "response":
                record.final = parsed
                record.usage = usage_of(parsed)
            if isinstance(parsed.get("id"), str):
                if head is not None:  # the usual id, written out: :meth:`_splice` without a JSON parser
                    start, end = head
                    value = body[start + 1 : end - 1].decode()  # nothing escaped: the bytes are the value
                    if value.startswith("resp"):
                        self.upstream_id = value
                        gateway_id = record.response_id = make_id(value)
                        body = b"".join((body[:start], orjson.dumps(gateway_id), body[end:]))
                else:
                    match = _HEAD_ID.match(body)
                    body = self._splice(body, ID, match.span(1) if match is not None else top_level_string(body, ID))
                if isinstance(parsed.get("previous_response_id"), str):
                    body = self._splice(body, PREVIOUS, top_level_string(body, PREVIOUS))
                if self.conversation is not None:
                    body = self._splice(body, CONVERSATION, _conversation_span(body, parsed.get("conversation")))
        redactor = self.opened.dep.redactor
        if redactor is not None:  # an upstream that echoes its credentials even when it succeeds
            body = redactor.bytes(body)
        record.first_token_at = time.monotonic()
        record.response_body = body
        record.status = reply.status
        return web.Response(body=body, status=reply.status, headers=self.headers, content_type=_content_type(reply))

    def _splice(self, body: bytes, name: bytes, span: tuple[int, int] | None) -> bytes:
        """``body`` with the token of field ``name`` at ``span`` rewritten (if it is an id to rewrite)."""
        if span is None:
            return body
        new = self._replacement(name, body[span[0] : span[1]])
        return body if new is None else body[: span[0]] + new + body[span[1] :]

    # -- large answers: streamed -----------------------------------------------------------------
    async def _stream(self, first: list[bytes], chunks: AsyncIterator[bytes]) -> web.StreamResponse:
        """Hold pieces until the top-level id (and any id field found before it) is rewritten, then
        relay, holding back only what a field not yet known may need; the last piece waits for the end."""
        rewrite = self.make_id is not None and _JSON_OBJECT.match(first[0]) is not None
        pieces = AnswerPieces(self._replacement if rewrite else None)
        for piece in first:
            pieces.add(piece)
        ended = False
        while not (ended or pieces.ready()):
            ended = not await self._read(pieces, chunks)
        resp = await self._start(pieces, pieces.may_grow(self.previous, self.conversation is not None))
        while True:
            for piece in pieces.take():
                await self._write(resp, piece)
            if ended:
                break
            ended = not await self._read(pieces, chunks)
        self.record.usage = pieces.usage()
        for piece in pieces.take(ended=True):
            await self._write(resp, piece)
        self.record.status = self.opened.reply.status
        return resp

    @staticmethod
    async def _read(pieces: AnswerPieces, chunks: AsyncIterator[bytes]) -> bool:
        """Take the next piece in; False at the answer's end (proved complete, its last fields rewritten)."""
        piece = await anext(chunks, None)
        if piece is None:
            pieces.end()
            return False
        pieces.add(piece)
        return True

    def _replacement(self, name: bytes, token: bytes) -> bytes | None:
        """The gateway's token for the id ``token`` of field ``name``, or None: it stays as it is."""
        if name == CONVERSATION:
            return self.conversation[1] if self.conversation is not None and token == self.conversation[0] else None
        assert self.make_id is not None
        try:
            value = orjson.loads(token)
        except orjson.JSONDecodeError:
            raise BadAnswer("its answer is not valid JSON") from None
        if not isinstance(value, str) or not value.startswith("resp"):
            return None
        if name == ID:
            self.upstream_id = value
            gateway_id = self.make_id(value)
            self.record.response_id = gateway_id
            return orjson.dumps(gateway_id)
        return orjson.dumps(self.make_id(value)) if value != self.upstream_id else None

    async def _start(self, pieces: AnswerPieces, may_grow: bool) -> web.StreamResponse:
        """Send the head: with the upstream's length and the rewrites' growth unless a field yet to
        come may change it (then chunked)."""
        reply = self.opened.reply
        resp = web.StreamResponse(status=reply.status, headers=self.headers)
        resp.content_type = _content_type(reply)
        length = reply.headers.get("Content-Length", "")
        if length.isdigit() and not may_grow:
            resp.content_length = int(length) + pieces.held.growth
            pieces.fixed_length = True
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


def _plain_head_id(body: bytes) -> tuple[int, int] | None:
    """Where the token of the answer's ``id`` is when it is the first key (where servers write it)
    and holds no escape; else None.

    Compact JSON (the usual answer) is read with two searches: the regular expression, which
    handles whitespace, costs several times more.
    """
    if body.startswith(b'{"id":"'):
        end = body.find(b'"', 7) + 1
        if end and body.find(b"\\", 7, end) < 0:
            return 6, end
    head = _HEAD_ID.match(body)
    if head is None:
        return None
    start, end = head.span(1)
    return (start, end) if body.find(b"\\", start, end) < 0 else None


def _conversation_span(body: bytes, value: object) -> tuple[int, int] | None:
    """Where the id token of the answer's ``conversation`` (``value``, parsed) is: the value itself
    (a string), or the object's ``id``."""
    if not isinstance(value, str | dict):
        return None
    scanner = KeyScanner((CONVERSATION,))
    found = [*scanner.feed(body), *scanner.finish()]
    if not found:
        return None
    at = found[0][1]
    if isinstance(value, str):
        token = STRING_TOKEN.match(body, at)
        return token.span(1) if token is not None else None
    span = top_level_string(body[at:], ID)
    return (at + span[0], at + span[1]) if span is not None else None


_NO_HEADERS: Mapping[str, str] = {}


def _content_type(reply: object) -> str:
    headers: Mapping[str, str] = getattr(reply, "headers", _NO_HEADERS)
    return headers.get("Content-Type", "application/json").split(";")[0]
