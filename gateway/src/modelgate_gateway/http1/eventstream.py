"""The one reader of Server-Sent Events framing (``text/event-stream``): the ``data`` of an event.

Used wherever the gateway looks inside an event it relays (event types, the response id, usage,
token estimation). Per the SSE specification a field's value loses exactly one leading space,
lines may end in CRLF, and an event's several ``data:`` lines join with ``\\n``.
"""

from __future__ import annotations


def event_data(event: bytes) -> bytes:
    """The joined ``data:`` lines of one event (its bytes between blank lines); ``b""`` when none.

    An event with one ``data`` line (every server's) is cut out with a few searches, not split into
    lines, CRLF or not. ``find``, not ``in``: ``bytes in bytes`` first tries the needle as an integer
    (CPython 3.11); slices, not ``startswith`` with an offset: that costs an argument tuple.
    """
    start = event.find(b"data:")
    if start < 0:
        return b""
    if not start or event[start - 1] == 10:  # at a line's start: the first data line
        start += 6 if event[start + 5 : start + 6] == b" " else 5  # its value, less one leading space
        end = event.find(b"\n", start)
        if end < 0:
            return event[start:]  # a lone CR at the very end stays, as below
        if event.find(b"\ndata:", end) < 0:
            return event[start : end - 1] if event[end - 1 : end] == b"\r" else event[start:end]
    if event.find(b"\r") >= 0:
        event = event.replace(b"\r\n", b"\n")
    return b"\n".join(line[5:].removeprefix(b" ") for line in event.split(b"\n") if line.startswith(b"data:"))
