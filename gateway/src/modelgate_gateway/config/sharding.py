"""One config document across several objects: split by the operator, assembled by the gateway.

A ConfigMap holds at most 1 MiB, so a large document travels as a *head* (the document with
only the base config's models and deployments, its ``metadata`` and every other field) plus
*shards* (the routed models and deployments, grouped by route and spread over ``2**k`` buckets
by a hash of the route, so one route's change rewrites one shard). An *index* names every part
with the SHA-256 of its bytes and the whole document's spec checksum. A reader assembles only a
set whose parts all match the index and whose assembled spec matches the checksum, so a set
caught half-written is never applied (:class:`Inconsistent`: wait for the rest). A document
small enough for one object is its own head, with no shards. Pure and stdlib-only, like the
rest of the seam; object names are the caller's.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .checksum import canonical_json, spec_checksum
from .v1alpha1 import API_VERSION

INDEX_KIND = "GatewayConfigIndex"
INDEX_KEY = "index.json"
"""Data key (and file name when mounted) of the index, in the same object as the head."""
HEAD_KEY = "config.json"
"""Data key of the head: the whole document when it has no shards (what older readers read)."""
_ROUTED = ("deployments", "models")
_KEY = re.compile(r"^[-._a-zA-Z0-9]{1,253}$")
"""A ConfigMap data key (Kubernetes' rule), hence a plain file name."""


def shard_key(bucket: int) -> str:
    """Data key (and mounted file name) of bucket ``bucket``'s shard: unique across objects, so
    every part can share one mounted directory."""
    return f"config-{bucket}.json"


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class IndexUnreadable(ValueError):
    """The index cannot be read; a reader keeps its last good set and waits for a new one."""


class Inconsistent(Exception):
    """The parts found do not (yet) make the set the index names: wait for the rest."""


@dataclass(frozen=True, slots=True)
class Part:
    """One part of a sharded document: where it is and the SHA-256 (hex) of its bytes."""

    object: str
    key: str
    sha256: str


@dataclass(frozen=True, slots=True)
class ConfigIndex:
    """What a complete set is: every part with its hash, and where the secret store lives."""

    checksum: str
    """Spec checksum of the assembled document (its ``metadata.checksum``)."""
    generation: int | None
    head: Part
    shards: tuple[Part, ...] = ()
    secrets: tuple[str, ...] = ()
    """Secrets whose keys together form the gateway's secret store (``secretKey`` references)."""

    def to_bytes(self) -> bytes:
        def part(p: Part) -> dict[str, str]:
            return {"object": p.object, "key": p.key, "sha256": p.sha256}
        return canonical_json({
            "apiVersion": API_VERSION, "kind": INDEX_KIND, "checksum": self.checksum,
            "generation": self.generation, "head": part(self.head),
            "shards": [part(s) for s in self.shards], "secrets": list(self.secrets),
        })

    @classmethod
    def parse(cls, raw: bytes | str) -> ConfigIndex:
        try:
            data = json.loads(raw)
            if data.get("kind") != INDEX_KIND or data.get("apiVersion") != API_VERSION:
                raise IndexUnreadable(f"not a {API_VERSION} {INDEX_KIND}")

            def part(p: Mapping[str, Any]) -> Part:
                found = Part(str(p["object"]), str(p["key"]), str(p["sha256"]))
                # A key is also a file name next to the index: never a path elsewhere.
                if not _KEY.match(found.key) or found.key.startswith(".."):
                    raise IndexUnreadable(f"bad part key {found.key!r}")
                return found
            generation = data.get("generation")
            return cls(checksum=str(data["checksum"]),
                       generation=generation if isinstance(generation, int) else None,
                       head=part(data["head"]), shards=tuple(part(s) for s in data["shards"]),
                       secrets=tuple(str(s) for s in data.get("secrets") or ()))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            if isinstance(exc, IndexUnreadable):
                raise
            raise IndexUnreadable(f"unreadable config index: {exc}") from None

    @property
    def parts(self) -> tuple[Part, ...]:
        return (self.head, *self.shards)


def looks_like_index(raw: bytes) -> bool:
    """Cheap test before parsing: an index names its kind near the start (canonical JSON)."""
    return raw.lstrip()[:1] == b"{" and INDEX_KIND.encode() in raw[:512]


def assemble(index: ConfigIndex, parts: Mapping[str, bytes | None]) -> bytes:
    """The whole document from the parts found (data key -> bytes, None when absent).

    Raises :class:`Inconsistent` unless every part the index names is there with its hash and
    the assembled spec has the index's checksum. Shards' entries follow the head's in name
    order, as the operator renders them, so the result is byte-identical to the rendered
    document whatever the number of shards.
    """
    for part in index.parts:
        found = parts.get(part.key)
        if found is None:
            raise Inconsistent(f"{part.object} ({part.key}) is missing")
        if sha256_hex(found) != part.sha256:
            raise Inconsistent(f"{part.object} ({part.key}) does not match the index yet")
    head_bytes = parts[index.head.key]
    assert head_bytes is not None
    if not index.shards:
        return head_bytes
    try:
        head = json.loads(head_bytes)
        spec = head["spec"]
        routed: dict[str, list[Any]] = {kind: [] for kind in _ROUTED}
        for part in index.shards:
            shard = json.loads(parts[part.key] or b"")
            for kind in _ROUTED:
                routed[kind].extend(shard.get(kind) or [])
        for kind in _ROUTED:
            spec[kind] = list(spec.get(kind) or []) + sorted(routed[kind], key=lambda e: str(e["name"]))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise Inconsistent(f"the parts do not form a document: {exc}") from None
    if spec_checksum(spec) != index.checksum:
        raise Inconsistent("the assembled spec does not match the index's checksum")
    return canonical_json(head)


# --- splitting (the operator's side) ---------------------------------------------------------


class TooLarge(Exception):
    """No split fits: ``sizes`` holds the bytes each group (route) adds, for the message."""

    def __init__(self, message: str, size: int, sizes: Mapping[str, int]) -> None:
        super().__init__(message)
        self.size = size
        self.sizes = dict(sizes)


@dataclass(frozen=True, slots=True)
class Split:
    """A document as a head plus ``len(shards)`` shards (bucket ``b`` is ``shards[b]``)."""

    head: bytes
    shards: tuple[bytes, ...] = ()
    size: int = 0
    """Bytes of the whole document."""
    group_sizes: Mapping[str, int] = field(default_factory=dict)


def _bucket_hash(group: str) -> int:
    return int.from_bytes(hashlib.sha256(group.encode()).digest()[:8], "big")


def bucket_count(hashes: Mapping[str, int], sizes: Mapping[str, int], overhead: int, *,
                 target: int, limit: int, max_buckets: int) -> int | None:
    """Fewest buckets (a power of two, at most ``max_buckets``) whose every bucket stays within
    ``target`` bytes; failing that the most allowed if each stays within ``limit``; else None.

    Powers of two, with a bucket picked by the low bits of a stable hash: when the count
    doubles, each group stays put or moves to exactly one new bucket, so growing rewrites
    each shard once and ordinary changes rewrite one.
    """
    count = 1
    while True:
        totals = [overhead] * count
        for group, size in sizes.items():
            totals[hashes[group] & (count - 1)] += size
        last = count * 2 > max_buckets
        if max(totals) <= target or (last and max(totals) <= limit):
            return count
        if last:
            return None
        count *= 2


Entry = tuple[str, str, bytes]
"""(kind, name, canonical JSON) of one routed model or deployment."""


def _group_of(model: Mapping[str, Any]) -> str:
    route = model.get("route")
    return f"{route['namespace']}/{route['name']}" if isinstance(route, Mapping) else str(model["name"])


def _groups(spec: Mapping[str, Any], first_routed: tuple[int, int]) -> dict[str, list[Entry]]:
    """Routed entries by group: a model and the deployments it targets share their route's group."""
    models = list(spec.get("models") or [])[first_routed[1]:]
    owner: dict[str, str] = {}
    for model in models:
        for target in model.get("targets") or []:
            owner.setdefault(str(target["deployment"]), _group_of(model))
    groups: dict[str, list[Entry]] = {}
    for dep in list(spec.get("deployments") or [])[first_routed[0]:]:
        name = str(dep["name"])
        groups.setdefault(owner.get(name, name), []).append(("deployments", name, canonical_json(dep)))
    for model in models:
        groups.setdefault(_group_of(model), []).append(("models", str(model["name"]), canonical_json(model)))
    return groups


def _shard_bytes(entries: Iterable[Entry]) -> bytes:
    """Canonical JSON of ``{"deployments": [...], "models": [...]}``, entries in name order."""
    ordered = sorted(entries, key=lambda e: (e[0], e[1]))
    deployments = b",".join(e[2] for e in ordered if e[0] == "deployments")
    models = b",".join(e[2] for e in ordered if e[0] == "models")
    return b'{"deployments":[' + deployments + b'],"models":[' + models + b"]}"


def split_document(data: Mapping[str, Any], *, first_routed: tuple[int, int], target: int,
                   limit: int, max_shards: int, reserve: int = 0) -> Split:
    """Split a rendered document (plain data with ``metadata.checksum`` set).

    ``first_routed``: how many leading deployments and models belong to the base config (they
    stay in the head). ``reserve``: bytes the head's object also carries (the index). A whole
    document within ``target`` is not split. Raises :class:`TooLarge` when no split fits.
    """
    whole = canonical_json(data)
    if len(whole) + reserve <= target:
        return Split(head=whole, size=len(whole))
    spec = data["spec"]
    groups = _groups(spec, first_routed)
    sizes = {g: sum(len(entry) + 1 for _, _, entry in entries) for g, entries in groups.items()}
    head_spec = {**spec, "deployments": list(spec.get("deployments") or [])[:first_routed[0]],
                 "models": list(spec.get("models") or [])[:first_routed[1]]}
    head = canonical_json({**data, "spec": head_spec})
    if len(head) + reserve > limit:
        raise TooLarge(f"the config without its routes is {len(head):,} bytes, over the "
                       f"{limit - reserve:,} one object holds", len(whole), sizes)
    hashes = {g: _bucket_hash(g) for g in groups}
    count = bucket_count(hashes, sizes, len(_shard_bytes(())), target=target, limit=limit,
                         max_buckets=max_shards)
    if count is None:
        raise TooLarge(f"the config is {len(whole):,} bytes and does not fit in {max_shards} "
                       f"shards of at most {limit:,} bytes each", len(whole), sizes)
    buckets: list[list[Entry]] = [[] for _ in range(count)]
    for group, entries in groups.items():
        buckets[hashes[group] & (count - 1)].extend(entries)
    return Split(head=head, shards=tuple(_shard_bytes(b) for b in buckets), size=len(whole),
                 group_sizes=sizes)
