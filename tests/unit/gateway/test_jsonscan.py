"""The JSON key scanner agrees with a byte-by-byte reference on tricky texts cut anywhere."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from modelgate_gateway.streaming.jsonscan import KeyScanner, Nesting, top_level_string

TRICKY_STRINGS = ['"id":', 'a\\', '\\"id\\": 1', "{[", "]}", '"usage":{"x":1}', "é ✓", "\\\\", '\\', "", "id"]
KEYS = ["id", "usage", "x", 'a"id', "id\\", "response"]


def _reference(text: bytes, names: set[bytes], depth: int) -> list[tuple[bytes, int]]:
    """Keys at ``depth`` found one byte at a time (slow and obviously right)."""
    found = []
    level, i, n = 0, 0, len(text)
    while i < n:
        c = text[i]
        if c == ord('"'):
            j = i + 1
            while text[j] != ord('"'):
                j += 2 if text[j] == ord("\\") else 1
            k = j + 1
            while k < n and text[k] in b" \t\r\n":
                k += 1
            if k < n and text[k] == ord(":") and level == depth and text[i + 1:j] in names:
                found.append((text[i + 1:j], k + 1))
            i = j + 1
            continue
        level += c in b"{["
        level -= c in b"}]"
        i += 1
    return found


def _value(rng: random.Random, level: int) -> Any:
    roll = rng.random()
    if level > 3 or roll < 0.3:
        return rng.choice(TRICKY_STRINGS) if rng.random() < 0.7 else rng.randint(-5, 5)
    if roll < 0.6:
        return [_value(rng, level + 1) for _ in range(rng.randint(0, 4))]
    return {rng.choice(KEYS): _value(rng, level + 1) for _ in range(rng.randint(0, 5))}


def _pieces(rng: random.Random, text: bytes) -> list[bytes]:
    cuts = sorted(rng.sample(range(1, len(text)), min(len(text) - 1, rng.randint(0, 12))))
    return [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]


@pytest.mark.parametrize("seed", range(300))
def test_keys_found_as_the_reference_finds_them(seed: int) -> None:
    rng = random.Random(seed)
    doc = {rng.choice(KEYS): _value(rng, 1) for _ in range(rng.randint(1, 6))}
    text = json.dumps(doc, indent=rng.choice([None, 1]), ensure_ascii=rng.random() < 0.5).encode()
    depth = rng.choice([1, 2, 3])
    scanner = KeyScanner((b"id", b"usage"), depth=depth)
    found = [hit for piece in _pieces(rng, text) for hit in scanner.feed(piece)] + scanner.finish()
    assert found == _reference(text, {b"id", b"usage"}, depth)
    assert scanner.nesting.closed


def test_single_bytes_and_escapes_at_every_cut() -> None:
    text = b'{"a":"x\\\\","b":"\\"id\\":","id" :  "resp_1","c":[{"usage":2}],"usage":{"input_tokens":3}}'
    scanner = KeyScanner((b"id", b"usage"))
    found = [hit for byte in text for hit in scanner.feed(bytes([byte]))] + scanner.finish()
    assert found == [(b"id", text.index(b'  "resp_1"')), (b"usage", text.rindex(b"{"))]


def test_nesting_reports_unfinished_text() -> None:
    nesting = Nesting()
    nesting.feed(b'{"a":[1,2')
    assert not nesting.closed
    nesting.feed(b'],"b":"x\\')
    assert nesting.in_string and nesting.escaped
    nesting.feed(b'"}')  # the escaped quote does not end the string
    assert nesting.in_string
    nesting.feed(b'"}')
    assert nesting.closed


def test_top_level_string() -> None:
    body = b'{"object":"response","output":[{"id":"msg_1"}],"id":"resp"}'
    start, end = top_level_string(body, b"id") or (0, 0)
    assert body[start:end] == b'"resp"'
    assert top_level_string(b'{"output":[{"id":"msg_1"}]}', b"id") is None
    assert top_level_string(b'{"id":7}', b"id") is None
