"""Skip the expensive part of a pass when its inputs did not change.

With thousands of routes, parsing, rendering and validating the whole document takes seconds,
and most passes (rollout polls, the 30 s resync, a Secret nobody references) change nothing.
The reconciler fingerprints what a render depends on (each route's identity and spec, the
referenced Secrets, the base config) and reuses the previous result when all are the same.
Pure; the caller keeps one :class:`RenderMemo` per replica.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Generic, TypeVar

_T = TypeVar("_T")
_IDENTITY = ("namespace", "name", "generation", "uid", "creationTimestamp", "deletionTimestamp")


def route_digest(body: Mapping[str, Any]) -> str:
    """What parsing and rendering one route depend on: its identity and spec (never its status,
    which the operator itself writes on every pass)."""
    meta = body.get("metadata") or {}
    text = json.dumps([[meta.get(k) for k in _IDENTITY], body.get("spec")], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def routes_fingerprint(digests: Iterable[str]) -> str:
    """One fingerprint of every route, in list order."""
    return hashlib.sha256("\n".join(digests).encode()).hexdigest()


class ParseCache(Generic[_T]):
    """Parsed routes by digest: a pass parses only the routes that changed since the last one.

    Keeps exactly the routes of the last pass, so it never outgrows the cluster's routes; a
    parsed route is the same object from pass to pass, which lets rendering reuse its work.
    """

    def __init__(self, parse: Callable[[Mapping[str, Any]], _T]) -> None:
        self._parse = parse
        self._by_digest: dict[str, _T] = {}

    def parse_all(self, bodies: Sequence[Mapping[str, Any]], digests: Sequence[str]) -> list[_T]:
        previous, self._by_digest = self._by_digest, {}
        parsed = []
        for body, digest in zip(bodies, digests, strict=True):
            found = previous.get(digest)
            if found is None:
                found = self._parse(body)
            self._by_digest[digest] = found
            parsed.append(found)
        return parsed


def secrets_fingerprint(secrets: Mapping[tuple[str, str], Mapping[str, bytes] | None]) -> str:
    digest = hashlib.sha256()
    for (namespace, name), data in sorted(secrets.items()):
        digest.update(f"{namespace}/{name}\0".encode())
        for key, value in sorted((data or {}).items()) if data is not None else ():
            digest.update(key.encode() + b"\0" + hashlib.sha256(value).digest())
        digest.update(b"\0missing" if data is None else b"\0")
    return digest.hexdigest()


class Memo(Generic[_T]):
    """One remembered result and the key it was computed for. Keys compare by value, except the
    objects given as ``same``, compared by identity (a reloaded base config is a new object)."""

    def __init__(self) -> None:
        self._key: tuple[Any, ...] | None = None
        self._same: tuple[object, ...] = ()
        self._value: _T | None = None

    def lookup(self, key: tuple[Any, ...], same: tuple[object, ...] = ()) -> _T | None:
        if (self._key == key and len(same) == len(self._same)
                and all(a is b for a, b in zip(same, self._same, strict=True))):
            return self._value
        return None

    def store(self, key: tuple[Any, ...], value: _T, same: tuple[object, ...] = ()) -> _T:
        self._key, self._same, self._value = key, same, value
        return value
