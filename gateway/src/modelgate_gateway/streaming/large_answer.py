"""A large JSON answer on its way through: its id fields rewritten as they pass, without a parse.

:class:`AnswerPieces` takes the answer's pieces in and says which to write now. :class:`Scan`
finds the outermost object's ``id``, ``previous_response_id``, ``conversation`` (each the first
time it comes) and ``usage``; :class:`HeldPieces` keeps the pieces read but not yet written, in
the upstream's offsets, with the rewrites due in them. A rewrite is applied to its piece as that
piece is written, so no piece is copied unless it holds an id, and nothing is held longer than
the value of a field found (or one a key split across pieces may still reveal) needs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable

import orjson

from ..observability.recording import Usage
from ..observability.usage import MAX_ITEM_KINDS, billed_items, served_tier, usage_from_mapping
from .jsonscan import STRING_TOKEN, KeyScanner

ID = b"id"
PREVIOUS = b"previous_response_id"
CONVERSATION = b"conversation"
USAGE = b"usage"
SERVICE_TIER = b"service_tier"
OUTPUT = b"output"
ITEM_TYPE = b"type"
BILLED_ITEM = rb"[a-z0-9_]{1,64}_call|compaction"
"""The ``type`` of an output item that may be billed per call (``web_search_call``, ...) or compacts."""
FIELD_BYTES = 2048
"""Bytes past a key within which its value must be known; a longer value is no id and passes as is."""
CARRY = 64
"""A key is reported at most this many bytes before the end of what was fed (see KeyScanner)."""
_USAGE_BYTES = 64 * 1024  # a usage object is a few hundred bytes; more is not read
_TIER_BYTES = 64  # "flex", "priority": a tier name is short
_RECENT = 2 * CARRY  # bytes kept from before a piece: a key reported late starts no earlier
_CONVERSATION_TOKEN = re.compile(rb'[ \t\r\n]*(?:\{[ \t\r\n]*"id"[ \t\r\n]*:)?' + STRING_TOKEN.pattern)
"""A conversation's id: the value itself (a string), or the ``id`` of the object (its first key, as
servers write it)."""
_DECODER = json.JSONDecoder()
_EVERYTHING = 1 << 62  # an offset past any answer's end
NEED_MORE = (-1, -1)
""":func:`value_span`'s answer when the value is not known yet."""


def value_span(name: bytes, data: bytes, complete: bool) -> tuple[int, int] | None:
    """Where in ``data`` (the bytes from just past the key ``name``'s colon) the id token is;
    None when the value is no string (or no object starting with an ``id``, for a conversation);
    :data:`NEED_MORE` when that is not known from ``data`` unless it is ``complete``."""
    match = (_CONVERSATION_TOKEN if name == CONVERSATION else STRING_TOKEN).match(data)
    if match is not None:
        return match.span(1)
    if complete:
        return None
    head = data.lstrip(b" \t\r\n")[:1]
    if head and head != b'"' and not (head == b"{" and name == CONVERSATION):
        return None  # null, a number, an object: not an id, known at once
    return NEED_MORE


class Scan:
    """What a streamed answer's scan found: its id fields not yet dealt with, what its usage holds,
    and the kinds of its output items that are billed per call (hosted tool calls) or compact.

    Output items are found by a second scanner that reports only ``"type": "…_call"`` (or
    ``"compaction"``) at the items' depth, after the answer's ``output`` key: no item is parsed,
    and the counts are bounded (:data:`..observability.usage.MAX_ITEM_KINDS` kinds)."""

    __slots__ = (
        "_finished",
        "_recent",
        "fed",
        "item_kinds",
        "items",
        "output_at",
        "pending",
        "scanner",
        "seen",
        "tier_bytes",
        "usage_bytes",
    )

    def __init__(self) -> None:
        self.scanner = KeyScanner((ID, PREVIOUS, CONVERSATION, USAGE, SERVICE_TIER, OUTPUT))
        self.items = KeyScanner((ITEM_TYPE,), depth=3, value=BILLED_ITEM, value_bytes=69)
        self.item_kinds: dict[str, int] = {}
        self.output_at: int | None = None
        """Offset just past the top-level ``output`` key: item types before it are not the output's."""
        self.pending: list[tuple[bytes, int]] = []
        """(name, offset just past its colon) of id fields found and not yet dealt with, in order."""
        self.seen: set[bytes] = set()
        self.usage_bytes: bytes | None = None
        self.tier_bytes: bytes | None = None
        """The start of ``service_tier``'s value: the served tier prices the usage (docs/metrics.md)."""
        self.fed = 0  # bytes fed so far
        self._recent = b""  # the last bytes before the current piece
        self._finished = False

    def feed(self, piece: bytes) -> None:
        self._note(self.scanner.feed(piece), piece)
        self._count(self.items.feed(piece))  # after the keys: ``output`` is known before its items
        self.fed += len(piece)
        self._recent = piece[-_RECENT:] if len(piece) >= _RECENT else (self._recent + piece)[-_RECENT:]

    def finish(self) -> None:
        if not self._finished:
            self._finished = True
            self._note(self.scanner.finish(), b"")
            self._count(self.items.finish())

    def _note(self, found: list[tuple[bytes, int]], piece: bytes) -> None:
        if self.usage_bytes is not None and len(self.usage_bytes) < _USAGE_BYTES:
            self.usage_bytes += piece[: _USAGE_BYTES - len(self.usage_bytes)]
        if self.tier_bytes is not None and len(self.tier_bytes) < _TIER_BYTES:
            self.tier_bytes += piece[: _TIER_BYTES - len(self.tier_bytes)]
        for name, at in found:
            if name in self.seen:
                continue  # a repeated key: only the first is looked at
            self.seen.add(name)
            if name == USAGE:
                self.usage_bytes = self._from(at, piece)[:_USAGE_BYTES]
            elif name == OUTPUT:
                self.output_at = at
            elif name == SERVICE_TIER:
                self.tier_bytes = self._from(at, piece)[:_TIER_BYTES]
            else:
                self.pending.append((name, at))

    def _count(self, found: list[tuple[bytes, int]]) -> None:
        kinds, output_at = self.item_kinds, self.output_at
        for kind, at in found:
            if output_at is not None and at > output_at:
                name = kind.decode("ascii")  # the pattern matched ASCII only
                if name in kinds or len(kinds) < MAX_ITEM_KINDS:
                    kinds[name] = kinds.get(name, 0) + 1

    def _from(self, at: int, piece: bytes) -> bytes:
        """The bytes from offset ``at`` to the end of ``piece``."""
        window = self._recent + piece  # ``at`` is at most _RECENT bytes before this piece
        return window[at - (self.fed - len(self._recent)) :]

    def hold_from(self) -> int:
        """The offset from which bytes must stay held: a field found later is reported no earlier."""
        later = self.fed if self._finished else self.fed - CARRY
        return min(self.pending[0][1], later) if self.pending else later

    def usage(self) -> Usage | None:
        if not self.usage_bytes:
            return None
        text = self.usage_bytes.decode("utf-8", "replace").lstrip(" \t\r\n")
        try:
            value, _ = _DECODER.raw_decode(text)
        except ValueError:
            return None
        usage = usage_from_mapping(value)
        if usage is not None and self.tier_bytes:
            usage.service_tier = self._tier()
        if usage is not None and self.item_kinds:
            usage.tool_calls, usage.compacted = billed_items(self.item_kinds)
        return usage

    def _tier(self) -> str | None:
        token = STRING_TOKEN.match(self.tier_bytes or b"")
        if token is None:
            return None
        try:
            tier = orjson.loads(token.group(1))
        except orjson.JSONDecodeError:
            return None
        return served_tier({"service_tier": tier})


class HeldPieces:
    """Pieces read but not written, from upstream offset ``start``, and the rewrites due in them
    ((start, end, new bytes), in order, each within one piece)."""

    __slots__ = ("growth", "pieces", "splices", "start")

    def __init__(self) -> None:
        self.pieces: list[bytes] = []
        self.start = 0
        self.splices: list[tuple[int, int, bytes]] = []
        self.growth = 0  # how much longer the rewrites made the answer

    def add(self, piece: bytes) -> None:
        self.pieces.append(piece)

    def window(self, at: int, size: int) -> bytes:
        """Up to ``size`` held bytes from offset ``at`` (copies only those bytes)."""
        parts: list[bytes] = []
        offset = self.start
        for piece in self.pieces:
            end = offset + len(piece)
            if end > at:
                parts.append(piece[max(0, at - offset) : at - offset + size])
                size -= len(parts[-1])
                if size <= 0:
                    break
            offset = end
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def splice(self, start: int, end: int, new: bytes) -> None:
        """Replace the bytes at ``start:end`` with ``new`` when they are written."""
        first, offset = 0, self.start
        while offset + len(self.pieces[first]) <= start:
            offset += len(self.pieces[first])
            first += 1
        last, last_end = first, offset + len(self.pieces[first])
        while last_end < end:  # the token spans pieces: they become one (a few KiB at most past the first)
            last += 1
            last_end += len(self.pieces[last])
        if last > first:
            self.pieces[first : last + 1] = [b"".join(self.pieces[first : last + 1])]
        self.splices.append((start, end, new))
        self.growth += len(new) - (end - start)

    def take(self, before: int, keep_last: bool = True) -> list[bytes]:
        """The held pieces that end by offset ``before``, rewritten, now no longer held; never the
        last one while ``keep_last``."""
        pieces = self.pieces
        taken: list[bytes] = []
        while len(taken) < len(pieces) - keep_last and self.start + len(pieces[len(taken)]) <= before:
            piece = pieces[len(taken)]
            taken.append(
                self._rewritten(piece) if self.splices and self.splices[0][0] < self.start + len(piece) else piece
            )
            self.start += len(piece)
        del pieces[: len(taken)]
        return taken

    def _rewritten(self, piece: bytes) -> bytes:
        parts: list[bytes] = []
        offset = 0  # in ``piece``
        splices = self.splices
        while splices and splices[0][0] < self.start + len(piece):
            start, end, new = splices.pop(0)
            parts += (piece[offset : start - self.start], new)
            offset = end - self.start
        parts.append(piece[offset:])
        return b"".join(parts)


class BadAnswer(Exception):
    """The upstream's 2xx answer is not the complete JSON object it started as."""


Replacement = Callable[[bytes, bytes], "bytes | None"]
"""The gateway's token for (field name, upstream token), or None: the token stays as it is."""


class AnswerPieces:
    """A streamed answer's pieces in, the pieces to write out, the id fields rewritten on the way
    by ``replace`` (None: nothing is looked at, the pieces pass as they are)."""

    __slots__ = ("fixed_length", "held", "replace", "scan")

    def __init__(self, replace: Replacement | None) -> None:
        self.replace = replace
        self.scan = Scan() if replace is not None else None
        self.held = HeldPieces()
        self.fixed_length = False
        """The answer went out with a Content-Length: a rewrite may no longer change its length."""

    def add(self, piece: bytes) -> None:
        self.held.add(piece)
        if self.scan is not None:
            self.scan.feed(piece)
            self._resolve(False)

    def end(self) -> None:
        """The answer ended: the fields among its last bytes are dealt with."""
        if self.scan is not None:
            self.scan.finish()  # a key among the last bytes is reported only now
            self._resolve(True)
            if not self.scan.scanner.nesting.closed:
                raise BadAnswer("its answer ended before the JSON object did")

    def ready(self) -> bool:
        """Whether the answer may start out: its id is rewritten and no field found is pending."""
        return self.scan is None or (ID in self.scan.seen and not self.scan.pending)

    def may_grow(self, previous: bool, conversation: bool) -> bool:
        """Whether a field yet to come may change the answer's length (``previous``: a
        ``previous_response_id`` may need rewriting; ``conversation``: a conversation id)."""
        seen = self.scan.seen if self.scan is not None else {PREVIOUS, CONVERSATION}
        return (previous and PREVIOUS not in seen) or (conversation and CONVERSATION not in seen)

    def take(self, ended: bool = False) -> list[bytes]:
        """The pieces to write now (all that are left once the answer ``ended``)."""
        if ended:
            return self.held.take(_EVERYTHING, keep_last=False)
        return self.held.take(self.scan.hold_from() if self.scan is not None else _EVERYTHING)

    def usage(self) -> Usage | None:
        return self.scan.usage() if self.scan is not None else None

    def _resolve(self, ended: bool) -> None:
        """Rewrite the id fields found whose values are known by now, in order."""
        assert self.scan is not None and self.replace is not None
        pending = self.scan.pending
        while pending:
            name, at = pending[0]
            value = self.held.window(at, FIELD_BYTES)
            span = value_span(name, value, ended or len(value) >= FIELD_BYTES)
            if span == NEED_MORE:
                return
            del pending[0]
            if span is None:
                continue
            token = value[span[0] : span[1]]
            new = self.replace(name, token)
            if new is None or new == token:
                continue
            if self.fixed_length and len(new) != len(token):
                raise BadAnswer(f"its answer carries a '{name.decode()}' its request did not name")
            self.held.splice(at + span[0], at + span[1], new)
