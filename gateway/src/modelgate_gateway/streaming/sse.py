"""Server-Sent Events, cut at event boundaries, inspected without re-encoding.

:class:`SseRelayState` turns upstream chunks into complete event blocks for the client. It
rewrites the upstream response id into the gateway's signed id where it is an id (the ``id`` of an
event's ``response`` object, ``response_id`` fields; never the same text elsewhere), notes the
first output delta (time to first token) and parses exactly one event as JSON in the common case
(``response.created``) plus the terminal one for usage. Everything else passes as bytes.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import orjson

from ..http1.eventstream import event_data
from ..redaction import Redactor
from .sseblocks import COMPACT_RESPONSE_ID, has_delta, is_response_id, iter_events, last_events, rewrite_field

_TERMINAL = (b"response.completed", b"response.failed", b"response.incomplete")
_TERMINAL_NAME = re.compile(rb"response\.(?:completed|failed|incomplete)")
_LIFECYCLE = (b"response.created", b"response.in_progress", b"response.queued")
_SEQ = re.compile(rb'"sequence_number":\s*(\d+)')
_MAX_EVENT_BYTES = 8 * 1024 * 1024  # one event; an upstream that never ends one is broken
_MAX_KEPT_BYTES = 4 * 1024 * 1024  # stream bytes kept for token estimation; beyond: not kept
_SMALL_BLOCK = 4096  # blocks up to this size (one paced event) are searched whole: cheaper than cutting
_COMPACT_SIZE = len(COMPACT_RESPONSE_ID)
_PREVIOUS_BEFORE = re.compile(rb'"previous_response_id"\s*:\s*\Z')
_CONVERSATION_BEFORE = re.compile(rb'"conversation"\s*:\s*(?:\{\s*"id"\s*:\s*)?\Z')  # an object's id, or a string


class SseOverflow(ValueError):
    """The upstream sent more than one event may hold without ending it."""


class SseRelayState:
    """Per-stream state of the relay. ``feed`` returns the bytes to send to the client now."""

    __slots__ = (
        "_cr",
        "_gateway_token",
        "_id_probe",
        "_kept",
        "_make_id",
        "_redactor",
        "_tail",
        "_tail_len",
        "_terminal",
        "_terminal_blocks",
        "blocks",
        "created",
        "fields",
        "first_delta_seen",
        "gateway_id",
        "last_block",
        "upstream_id",
    )

    def __init__(
        self,
        make_id: Callable[[str], str],
        redactor: Redactor | None = None,
        conversation: tuple[bytes, bytes] | None = None,
    ) -> None:
        self._make_id = make_id
        self.fields: list[tuple[bytes, bytes, re.Pattern[bytes]]] | None = None
        """(upstream token, gateway token, what precedes it) of the other ids the response carries:
        its ``previous_response_id`` (learnt from the first event) and the ``conversation`` the
        request named ((upstream id, gateway id) given here). None: there are none (the usual case)."""
        if conversation is not None:
            self.fields = [
                (orjson.dumps(conversation[0].decode()), orjson.dumps(conversation[1].decode()), _CONVERSATION_BEFORE)
            ]
        self._redactor = redactor
        """Removes the deployment's credentials from error and failure events (None: it has none)."""
        self._tail: list[bytes] = []
        self._tail_len = 0
        self._cr = False
        self._kept = 0
        self.upstream_id: bytes | None = None
        self.gateway_id: bytes | None = None
        self._id_probe: bytes | None = None  # the upstream id as a JSON string, but its closing quote
        self._gateway_token = b""
        self.created: dict[str, Any] | None = None
        self._terminal: dict[str, Any] | None = None
        self._terminal_blocks: list[bytes] = []
        """Blocks that may hold the final event, parsed only when asked (after the writes)."""
        self.first_delta_seen = False
        self.last_block = b""
        self.blocks: list[bytes] = []

    def feed(self, chunk: bytes) -> bytes:
        """The bytes to send for this chunk: its complete events, credentials removed, ids rewritten.

        Credentials are removed from an ``error`` event or a failed response. Both say "error" and
        both end a stream, so, like the final event, they are among the block's last events (its
        ``tail``, found once per block for both): a block that arrived whole (an unpaced upstream)
        is searched only there, not through every delta. The created and final events say it too
        ("error":null), which costs one search of their few kilobytes per stream.

        Then the ids are rewritten (the tail kept in step) and what the accounting needs is noted:
        written out here, not in helpers, as this runs for every read of every stream.
        """
        block = self._frame(chunk)
        if not block:
            return b""
        tail = block if len(block) <= _SMALL_BLOCK else last_events(block)
        redactor = self._redactor
        if redactor is not None and tail.find(b"error") >= 0:  # find: ``in`` costs a TypeError first
            clean = redactor.bytes(tail)
            if clean is not tail:
                block, tail = block[: len(block) - len(tail)] + clean, clean
        if self.upstream_id is None:
            self._learn_id(block)
        probe = self._id_probe
        if probe is not None:
            at = block.find(probe)  # one search; a delta block (the usual one) holds no id
            if at >= 0:
                block, tail = self._rewrite_ids(block, tail, at)
        if self.fields is not None:  # rare: a previous response or a conversation to rewrite
            block, tail = self.rewrite_fields(block, tail, self.fields)
        if not self.first_delta_seen and has_delta(block):
            self.first_delta_seen = True
        # The final event is the stream's last, so only the block's last events are searched (a
        # block can hold a whole stream). On a short tail (a paced stream's delta) one pass for the
        # three names costs half what three ``find``s do (each stops at every "response." and pays
        # for its argument tuple); through kilobytes of a final event ``find``'s skips are faster.
        if (
            _TERMINAL_NAME.search(tail) is not None
            if tail is block  # a short block, searched whole (either way gives the same answer)
            else (
                tail.find(b"response.completed") >= 0
                or tail.find(b"response.failed") >= 0
                or tail.find(b"response.incomplete") >= 0
            )
        ):
            self._terminal_blocks.append(tail)
        self.last_block = block
        if self._kept < _MAX_KEPT_BYTES:
            self.blocks.append(block)
            self._kept += len(block)
        return block

    @staticmethod
    def rewrite_fields(
        block: bytes, tail: bytes, fields: list[tuple[bytes, bytes, re.Pattern[bytes]]]
    ) -> tuple[bytes, bytes]:
        for old, new, before in fields:
            if block.find(old) >= 0:
                block = rewrite_field(block, old, new, before)
                tail = block if len(block) <= _SMALL_BLOCK else last_events(block)
        return block, tail

    def _frame(self, chunk: bytes) -> bytes:
        """Complete events available after this read (possibly none)."""
        if self._cr:  # a CRLF split across chunks
            chunk, self._cr = b"\r" + chunk, False
        if chunk.find(b"\r") >= 0:  # some servers frame with CRLF; normalise so boundaries are found
            if chunk.endswith(b"\r"):
                chunk, self._cr = chunk[:-1], True
            chunk = chunk.replace(b"\r\n", b"\n")
        if not chunk:
            return b""
        # Only the new chunk is searched and the unfinished event is kept as parts, so an event
        # arriving in many small reads costs linear, not quadratic, time.
        cut = chunk.rfind(b"\n\n")
        if cut >= 0:
            cut += 2
        elif self._tail and self._tail[-1].endswith(b"\n") and chunk.startswith(b"\n"):
            cut = 1  # the boundary straddles the two reads
        else:
            self._tail.append(chunk)
            self._tail_len += len(chunk)
            if self._tail_len > _MAX_EVENT_BYTES:
                raise SseOverflow(f"upstream event exceeds {_MAX_EVENT_BYTES} bytes without an end")
            return b""
        block = b"".join((*self._tail, chunk[:cut])) if self._tail else chunk[:cut]
        rest = chunk[cut:]
        self._tail = [rest] if rest else []
        self._tail_len = len(rest)
        return block

    @property
    def pending(self) -> bytes:
        return b"".join(self._tail)

    def _learn_id(self, block: bytes) -> None:
        # The lifecycle event comes first; parse just it, not the (possibly whole) stream after it.
        for marker in _LIFECYCLE:
            at = block.find(marker)
            if at < 0:
                continue
            start = block.rfind(b"\n\n", 0, at)
            start = start + 2 if start >= 0 else 0
            end = block.find(b"\n\n", at)
            event = block[start : end if end >= 0 else len(block)]
            try:
                parsed = orjson.loads(event_data(event))
            except orjson.JSONDecodeError:
                continue
            # The type, not the marker's position, decides: a delta's text may quote the marker.
            if not isinstance(parsed, dict) or parsed.get("type") != marker.decode():
                continue
            response = parsed.get("response")
            rid = response.get("id") if isinstance(response, dict) else None
            if isinstance(rid, str) and rid and isinstance(response, dict):
                self.upstream_id = rid.encode()
                gateway_id = self._make_id(rid)
                self.gateway_id = gateway_id.encode()
                self._id_probe = orjson.dumps(rid)[:-1]
                self._gateway_token = orjson.dumps(gateway_id)
                self.created = response
                previous = response.get("previous_response_id")
                if isinstance(previous, str) and previous.startswith("resp") and previous != rid:
                    # The upstream echoes the id it was sent; the client must see the one it sent.
                    pair = (orjson.dumps(previous), orjson.dumps(self._make_id(previous)), _PREVIOUS_BEFORE)
                    self.fields = [*(self.fields or ()), pair]
                return

    def _rewrite_ids(self, block: bytes, tail: bytes, at: int) -> tuple[bytes, bytes]:
        """``block`` with the upstream id replaced where it is a response id (see :func:`is_response_id`),
        and its ``tail`` to match; ``at``: the first offset of the id's :attr:`_id_probe`.

        The probe is the id's JSON token without its closing quote, checked after each hit: a needle
        ending in ``"`` stops the search at every quote of the JSON it goes through. The checks
        compare slices: a method call with offsets costs an argument tuple and its parsing.
        """
        probe, new = self._id_probe, self._gateway_token
        assert probe is not None  # called only once the id is known
        size = len(probe) + 1  # the token's
        tail_at = len(block) - len(tail)
        parts: list[bytes] = []
        done = in_tail = 0
        while at >= 0:
            end = at + size
            if block[end - 1 : end] != b'"':
                at = block.find(probe, at + 1)  # not the token: a longer id that starts like it
                continue
            if block[at - _COMPACT_SIZE : at] == COMPACT_RESPONSE_ID or is_response_id(block, at):  # usual hit first
                parts += (block[done:at], new)
                done = end
                in_tail += at >= tail_at
            at = block.find(probe, end)
        if not parts:
            return block, tail
        parts.append(block[done:])
        out = b"".join(parts)
        if not in_tail:
            return out, tail  # the tail's bytes did not change
        before_tail = len(parts) // 2 - in_tail
        return out, out[tail_at + before_tail * (len(new) - size) :]

    @property
    def terminal(self) -> dict[str, Any] | None:
        """The response object of the final event, parsed lazily so the relay writes first."""
        while self._terminal is None and self._terminal_blocks:
            self._find_terminal(self._terminal_blocks.pop(0))
        return self._terminal

    def _find_terminal(self, block: bytes) -> None:
        # Parse only from the event that holds the marker: a block can carry a whole stream.
        for marker in _TERMINAL:
            at = block.rfind(marker)
            if at < 0:
                continue
            start = block.rfind(b"\n\n", 0, at)
            for kind, payload in iter_events(block[start + 2 if start >= 0 else 0 :]):
                if kind.encode() not in _TERMINAL:
                    continue
                try:
                    event = orjson.loads(payload)
                except orjson.JSONDecodeError:
                    continue
                response = event.get("response")
                if isinstance(response, dict):
                    self._terminal = response
                    return

    def next_sequence_number(self) -> int:
        found = _SEQ.findall(self.last_block)
        return int(found[-1]) + 1 if found else 0

    def failure_event(self, message: str, code: str = "server_error") -> bytes:
        """A ``response.failed`` event that ends the client's stream cleanly after an upstream drop."""
        response = dict(self.created or {"object": "response", "output": []})
        gateway_id = self.gateway_id.decode() if self.gateway_id is not None else None
        response.update(id=gateway_id, status="failed", error={"code": code, "message": message})
        for _, new, before in self.fields or ():
            if before is _PREVIOUS_BEFORE:
                response["previous_response_id"] = orjson.loads(new)
            else:
                as_string = isinstance(response.get("conversation"), str)  # as the upstream wrote it
                response["conversation"] = orjson.loads(new) if as_string else {"id": orjson.loads(new)}
        event = {"type": "response.failed", "sequence_number": self.next_sequence_number(), "response": response}
        return b"event: response.failed\ndata: " + orjson.dumps(event) + b"\n\n"


__all__ = ["SseOverflow", "SseRelayState", "iter_events"]
