"""Where a JSON text's keys are, found without parsing it, piece by piece.

Why: an answer may be as large as the body limit (128 MiB). Parsing it to learn two of its fields
(the top-level ``id`` the gateway rewrites, ``usage`` for accounting) would hold it several times
over as Python objects and keep the event loop busy for as long as the parse takes. Here string
literals are skipped by one regular expression and nesting is counted with ``bytes.count`` on what
is left, both in C; Python code runs once per piece and once per place that looks like a wanted
key. Strings never need decoding: a JSON string cannot contain an unescaped ``"``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_STRING = re.compile(rb'"[^"\\]*+(?:\\.[^"\\]*+)*+"')
_STRING_REST = re.compile(rb'[^"\\]*+(?:\\.[^"\\]*+)*+"')  # the rest of an open string, to its closing quote
STRING_TOKEN = re.compile(rb'[ \t\r\n]*("[^"\\]*+(?:\\.[^"\\]*+)*+")')
"""A string value after optional whitespace (``match`` at the offset a key search returned)."""
_MAX_GAP = 32  # whitespace between a key and its colon that is still looked at
_CARRY = 64  # bytes held back per piece, so a key split across two pieces is still found


class Nesting:
    """How deep JSON text fed in pieces is: each ``{`` or ``[`` outside a string opens a level."""

    __slots__ = ("depth", "escaped", "in_string")

    def __init__(self) -> None:
        self.depth = 0
        self.in_string = False
        self.escaped = False  # the last piece ended inside a string, on an unpaired backslash

    def feed(self, data: bytes) -> None:
        if not data:
            return
        pos = 0
        if self.in_string:
            if self.escaped:
                pos, self.escaped = 1, False
            rest = _STRING_REST.match(data, pos)
            if rest is None:  # the whole piece is inside the string
                tail = data[pos:]
                self.escaped = (len(tail) - len(tail.rstrip(b"\\"))) % 2 == 1
                return
            pos, self.in_string = rest.end(), False
        skeleton = _STRING.sub(b"", data[pos:] if pos else data)
        opened = skeleton.find(b'"')  # a string that starts here and ends in a later piece
        if opened >= 0:
            tail = skeleton[opened + 1 :]
            self.in_string = True
            self.escaped = (len(tail) - len(tail.rstrip(b"\\"))) % 2 == 1
            skeleton = skeleton[:opened]
        self.depth += skeleton.count(b"{") + skeleton.count(b"[") - skeleton.count(b"}") - skeleton.count(b"]")

    @property
    def closed(self) -> bool:
        """Everything opened was closed again (a whole value was fed)."""
        return self.depth == 0 and not self.in_string


class KeyScanner:
    """Finds the keys named ``names`` at nesting level ``depth`` (1: the keys of the outermost
    object) in JSON text fed in pieces; reports each as its name and the offset, counted from the
    first byte fed, just past its colon (where the value starts, after optional whitespace).

    With ``value`` (a regular expression of at most ``value_bytes`` bytes, without quotes), only keys
    whose value is a string it matches are reported, as that string and the offset past it: e.g.
    the ``type`` of output items that are tool calls, rare among all the ``type`` keys of an answer,
    so Python runs only for them."""

    __slots__ = ("_carry", "_carry_bytes", "_keys", "_offset", "_report", "depth", "nesting")

    def __init__(
        self, names: Iterable[bytes], depth: int = 1, *, value: bytes | None = None, value_bytes: int = 0
    ) -> None:
        names = tuple(names)
        longest = max(len(n) for n in names) + 3 + _MAX_GAP
        alternatives = b"|".join(re.escape(n) for n in names)
        pattern = b'"(' + alternatives + b')"[ \\t\\r\\n]{0,%d}:' % _MAX_GAP
        if value is not None:
            pattern += b'[ \\t\\r\\n]{0,%d}"(' % _MAX_GAP + value + b')"'
            longest += _MAX_GAP + value_bytes + 2
        self._keys = re.compile(pattern)
        self._report = 1 if value is None else 2
        # A match that starts before the held-back bytes must end inside the data it is looked for in.
        self._carry_bytes = max(_CARRY, longest)
        self.depth = depth
        self.nesting = Nesting()
        self._carry = b""
        self._offset = 0  # of the first byte of ``_carry``

    def feed(self, piece: bytes) -> list[tuple[bytes, int]]:
        data = self._carry + piece if self._carry else piece
        cut = max(0, len(data) - self._carry_bytes)
        found = self._scan(data, cut)
        self._carry = data[cut:]
        self._offset += cut
        return found

    def finish(self) -> list[tuple[bytes, int]]:
        """The keys in the bytes still held back; call once, after the last piece."""
        found = self._scan(self._carry, len(self._carry))
        self._offset += len(self._carry)
        self._carry = b""
        return found

    def _scan(self, data: bytes, end: int) -> list[tuple[bytes, int]]:
        found: list[tuple[bytes, int]] = []
        nesting = self.nesting
        pos = 0
        for match in self._keys.finditer(data):
            start = match.start()
            if start >= end:
                break  # starts in the held-back bytes: found again with the next piece
            nesting.feed(data[pos:start])
            pos = start
            if not nesting.in_string and nesting.depth == self.depth:
                found.append((match.group(self._report), self._offset + match.end()))
        nesting.feed(data[pos:end])
        return found


def top_level_string(body: bytes, key: bytes) -> tuple[int, int] | None:
    """Start and end offsets of the string token that is the value of ``key`` in the outermost
    object of a complete JSON text (the first such key), or None when it has none."""
    scanner = KeyScanner((key,))
    for _, at in [*scanner.feed(body), *scanner.finish()]:
        token = STRING_TOKEN.match(body, at)
        return (token.start(1), token.end(1)) if token is not None else None
    return None
