"""Server-Sent Events blocks read as bytes: where their events are, and what a token in them is.

The pure half of :mod:`.sse`: a block of complete events is never parsed as a whole. These find
its events (:func:`iter_events`, :func:`last_events`), the event around an offset, whether it holds
an output delta, and whether an id token at an offset is a response id's value (the structure
around it decides, never the text alone), and replace a token only where it is that field.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import orjson

from ..http1.eventstream import event_data
from .jsonscan import KeyScanner

# Output deltas that count as "first token" (text, refusals, tool-call arguments).
DELTA_TYPES = (b"response.output_text.delta", b"response.refusal.delta", b"response.function_call_arguments.delta")
TAIL_EVENTS = 3  # the final event, plus room for a "[DONE]" or keep-alive comment after it
LOOK_BEHIND = 64
# What comes right before an id token that is a response id: the first key of the ``response``
# object (where every known server writes it), a ``response_id`` field, or any other ``id`` key
# (then the event's structure decides).
RESPONSE_ID_BEFORE = re.compile(rb'(?:"response"\s*:\s*\{\s*"id"|"response_id")\s*:\s*\Z')
ID_KEY_BEFORE = re.compile(rb'"id"\s*:\s*\Z')
COMPACT_RESPONSE_ID = b'"response":{"id":'


def iter_events(block: bytes) -> Iterator[tuple[str, bytes]]:
    """(event type, data payload) of each event in a block of complete events."""
    for raw in block.split(b"\n\n"):
        if not raw:
            continue
        kind = ""
        at = raw.rfind(b"\nevent:") + 1  # the last ``event`` line counts; usually the first line
        if at or raw.startswith(b"event:"):
            end = raw.find(b"\n", at)
            kind = raw[at + 6 : end if end >= 0 else len(raw)].strip().decode("utf-8", "replace")
        payload = event_data(raw)
        if not kind and payload.startswith(b"{"):
            try:
                kind = str(orjson.loads(payload).get("type", ""))
            except orjson.JSONDecodeError:
                kind = ""
        yield kind, payload


def event_at(block: bytes, at: int) -> bytes:
    """The event (up to 200 bytes of it) that contains offset ``at`` of a block."""
    start = block.rfind(b"\n\n", 0, at)
    start = start + 2 if start >= 0 else 0
    return block[start : start + 200]


def last_events(block: bytes, count: int = TAIL_EVENTS) -> bytes:
    """The last ``count`` events of a block of complete events (the whole block if it has fewer).

    Per event, its last line (the data line, kilobytes of JSON for a final event) is skipped with
    ``rfind`` of one byte, a ``memrchr``; ``rfind(b"\\n\\n")``, several times slower per byte, then
    goes through the few bytes of the line before it only.
    """
    end = len(block) - 2  # a block ends with its last event's blank line
    for _ in range(count):
        line = block.rfind(b"\n", 0, end)  # a boundary's second byte is at or before it
        end = block.rfind(b"\n\n", 0, line + 1)
        if end < 0:
            return block
    return block[end + 2 :]


def has_delta(block: bytes) -> bool:
    for kind in DELTA_TYPES:
        at = block.find(kind)
        while at >= 0:  # bounded by the block's length; usually true at the first hit
            head = event_at(block, at)
            if head.startswith(b"event: " + kind) or head.find(b'"type":"' + kind + b'"') >= 0:
                return True
            at = block.find(kind, at + len(kind))
    return False


def replace_where(block: bytes, old: bytes, new: bytes, where: Callable[[bytes, int], bool]) -> bytes:
    """``block`` with the token ``old`` replaced by ``new`` at the offsets ``where`` accepts."""
    parts: list[bytes] = []
    done = 0
    at = block.find(old)
    while at >= 0:
        if where(block, at):
            parts += (block[done:at], new)
            done = at + len(old)
        at = block.find(old, at + len(old))
    if not parts:
        return block
    parts.append(block[done:])
    return b"".join(parts)


def rewrite_field(block: bytes, old: bytes, new: bytes, before: re.Pattern[bytes]) -> bytes:
    """``block`` with the token ``old`` replaced by ``new`` where ``before`` says it is that field's value."""
    return replace_where(
        block, old, new, lambda data, at: before.search(data, max(0, at - LOOK_BEHIND), at) is not None
    )


def is_response_id(block: bytes, at: int) -> bool:
    """Whether the id token at offset ``at`` is the value of a response-id field of its event."""
    if block.endswith(COMPACT_RESPONSE_ID, 0, at):  # how servers write it, found without a regex
        return True
    before = block[max(0, at - LOOK_BEHIND) : at]
    if RESPONSE_ID_BEFORE.search(before):
        return True
    if not ID_KEY_BEFORE.search(before):
        return False  # the same text as some other field's value, or inside a string
    # An ``id`` key elsewhere (a server that does not write it first): it counts when it is a key
    # of the object under the event's top-level ``response`` key.
    start = block.rfind(b"\n", 0, at) + 1
    if not block.startswith(b"data:", start):
        return False  # a payload split over several data lines: not inspected
    line = block[start + 5 : at]
    outer = KeyScanner((b"response",))
    found = [*outer.feed(line), *outer.finish()]
    if not found:
        return False
    inner = KeyScanner((b"id",))
    obj = line[found[-1][1] :]
    keys = [*inner.feed(obj), *inner.finish()]
    return bool(keys) and not obj[keys[-1][1] :].strip()  # the id key right before the token
