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
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Generic, TypeVar

_T = TypeVar("_T")
_IDENTITY = ("namespace", "name", "generation", "uid", "creationTimestamp", "deletionTimestamp")


def routes_fingerprint(bodies: Iterable[Mapping[str, Any]]) -> str:
    """What parsing depends on: each route's identity and spec (never its status, which the
    operator itself writes on every pass)."""
    digest = hashlib.sha256()
    for body in bodies:
        meta = body.get("metadata") or {}
        digest.update(json.dumps([[meta.get(k) for k in _IDENTITY], body.get("spec")],
                                 sort_keys=True, default=str).encode())
        digest.update(b"\n")
    return digest.hexdigest()


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
        self.hits = 0

    def lookup(self, key: tuple[Any, ...], same: tuple[object, ...] = ()) -> _T | None:
        if (self._key == key and len(same) == len(self._same)
                and all(a is b for a, b in zip(same, self._same, strict=True))):
            self.hits += 1
            return self._value
        return None

    def store(self, key: tuple[Any, ...], value: _T, same: tuple[object, ...] = ()) -> _T:
        self._key, self._same, self._value = key, same, value
        return value

    def get(self, key: tuple[Any, ...], compute: Callable[[], _T], same: tuple[object, ...] = ()) -> _T:
        found = self.lookup(key, same)
        return found if found is not None else self.store(key, compute(), same)
