"""The one reader of Server-Sent Events framing (``text/event-stream``): the ``data`` of an event.

Used wherever the gateway looks inside an event it relays (event types, the response id, usage,
token estimation). Per the SSE specification a field's value loses exactly one leading space,
lines may end in CRLF, and an event's several ``data:`` lines join with ``\\n``.
"""

from __future__ import annotations


def event_data(event: bytes) -> bytes:
    """The joined ``data:`` lines of one event (its bytes between blank lines); ``b""`` when none."""
    if b"\r" in event:
        event = event.replace(b"\r\n", b"\n")
    return b"\n".join(line[5:].removeprefix(b" ") for line in event.split(b"\n") if line.startswith(b"data:"))
