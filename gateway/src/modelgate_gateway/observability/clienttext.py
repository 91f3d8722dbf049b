"""Client-supplied text made safe for metric labels and request-log fields.

aiohttp decodes header bytes as UTF-8 with ``surrogateescape``, so a header holding a byte that
is not UTF-8 (``0xff``) reaches handlers as a lone surrogate (``"\\udcff"``). Such a string
cannot be encoded: once it is a label value every ``/metrics`` scrape fails, and orjson refuses
to write it in a log line. JSON bodies cannot carry lone surrogates (orjson rejects them) but
can carry control characters. :func:`safe_text` turns both into visible escapes (``\\xff``,
``\\x00``), so the value stays recognisable for whoever reads the log, and costs two C-level
checks for the usual plain-ASCII value.
"""

from __future__ import annotations

import re

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _escape_control(match: re.Match[str]) -> str:
    return f"\\x{ord(match.group()):02x}"


def safe_text(value: str) -> str:
    """``value`` if it is printable, encodable text; otherwise with the offending parts escaped."""
    if value.isascii() and value.isprintable():
        return value
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        try:  # the usual case: bytes that aiohttp smuggled in as surrogates -> show those bytes
            value = value.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        except UnicodeEncodeError:  # other lone surrogates (not from a header): escape them
            value = value.encode("utf-8", "backslashreplace").decode("utf-8")
    return _CONTROL.sub(_escape_control, value)


def safe_optional(value: str | None) -> str | None:
    return None if value is None else safe_text(value)
