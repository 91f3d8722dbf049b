"""Remove the credentials a deployment sends upstream from upstream text the gateway passes on.

Some upstreams quote the request back in their errors ("invalid header Authorization: Bearer
sk-…"). The gateway passes 4xx bodies and stream failure events through to any client, so each
deployment gets a :class:`Redactor` at compile time holding every form its secrets can take in
those bytes: the header value, the bare key without its scheme, and the key as a JSON encoder
writes it inside a string (quotes and backslashes escaped, ``/`` as ``\\/``, non-ASCII or HTML
characters as ``\\uXXXX``). Redaction runs on every upstream text the gateway passes on but the
model's own output: error answers and events, a JSON answer (one ``in`` scan per form of a body
that is small by then, usually one form), the created and final events of a stream (they say
"error" too); deltas are the model's text, which never saw a header. Answers over 1 MiB are
relayed piece by piece and not scanned (see docs/operations.md).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import TypeVar

MARK = "[redacted]"
_MARK = MARK.encode()

_CREDENTIAL_HEADERS = frozenset({"authorization", "proxy-authorization", "api-key", "cookie"})
_CREDENTIAL_WORDS = ("key", "token", "secret", "auth", "password", "credential", "signature", "session")
_MIN_GUESSED_SECRET = 8
"""Extra headers are secrets only by their name; shorter values (a version, a flag) are not."""
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9._~+-]*\s+(\S.*)$")
_Form = TypeVar("_Form", str, bytes)
_HTML = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026"}


def is_credential_header(name: str) -> bool:
    lower = name.lower()
    return lower in _CREDENTIAL_HEADERS or any(word in lower for word in _CREDENTIAL_WORDS)


def credential_values(credential: str | None, headers: Mapping[str, str]) -> list[str]:
    """The secrets a deployment sends: its key, and extra header values named like credentials."""
    found = [credential] if credential else []
    for name, value in headers.items():
        if is_credential_header(name) and len(value.strip()) >= _MIN_GUESSED_SECRET:
            found.append(value.strip())
    return found


def _json_forms(value: str) -> set[str]:
    """How JSON encoders write ``value`` inside a string (minimal, ASCII-only, ``\\/``, HTML-safe)."""
    forms = {json.dumps(value, ensure_ascii=False)[1:-1], json.dumps(value)[1:-1]}
    forms |= {form.replace("/", "\\/") for form in forms}
    forms |= {"".join(_HTML.get(ch, ch) for ch in form) for form in forms}
    # Some encoders write \u escapes with capital hex digits.
    forms |= {re.sub(r"\\u([0-9a-f]{4})", lambda m: "\\u" + m.group(1).upper(), form) for form in forms}
    return forms


def _minimal(forms: Iterable[_Form]) -> tuple[_Form, ...]:
    """Drop forms that contain another one: replacing the shorter already removes them."""
    kept: list[_Form] = []
    for form in sorted(set(forms), key=len):
        if form and not any(shorter in form for shorter in kept):
            kept.append(form)
    return tuple(sorted(kept, key=len, reverse=True))


class Redactor:
    """Replaces each known form of a deployment's secrets with ``[redacted]``."""

    __slots__ = ("_forms", "_texts")

    def __init__(self, secrets: Iterable[str]) -> None:
        values: set[str] = set()
        for secret in secrets:
            values.add(secret)
            match = _SCHEME.match(secret)  # "Bearer sk-…": the bare key is a secret on its own
            if match:
                values.add(match.group(1))
        texts = {form for value in values for form in (value, *_json_forms(value))}
        raw = {form.encode() for form in texts}
        for value in values:  # header values go out as Latin-1; an upstream may echo those bytes
            try:
                raw.add(value.encode("latin-1"))
            except UnicodeEncodeError:
                pass
        self._forms = _minimal(raw)
        self._texts = _minimal(texts)

    def __bool__(self) -> bool:
        return bool(self._forms)

    def __repr__(self) -> str:  # never the secrets themselves
        return f"Redactor({len(self._forms)} forms)"

    def bytes(self, data: bytes) -> bytes:
        for form in self._forms:
            if data.find(form) >= 0:  # not ``in``: CPython 3.11 first tries a bytes needle as an integer
                data = data.replace(form, _MARK)
        return data

    def text(self, data: str) -> str:
        for form in self._texts:
            if form in data:
                data = data.replace(form, MARK)
        return data


def redactor_for(secrets: Iterable[str]) -> Redactor | None:
    """A redactor, or None when there is nothing to redact (the hot path then tests ``is None``)."""
    redactor = Redactor(secrets)
    return redactor if redactor else None
