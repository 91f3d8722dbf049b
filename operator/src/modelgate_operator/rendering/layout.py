"""Which objects carry a rendered config and its upstream keys: the plan one pass publishes.

Pure. The document is split into a head plus shards (:mod:`modelgate_gateway.config.sharding`):
the head and the index live in the gateway's ConfigMap ``<configmap>``, bucket ``b``'s shard in
``<configmap>-<b>``. The upstream keys are spread the same way, by a hash of the key, over the
Secret ``<secret>`` (bucket 0) and ``<secret>-<b>``. Small configs (the common case) are exactly
one ConfigMap holding the whole document under ``config.json`` and one Secret, as before
sharding. Names are bounded by ``max_shards``, so RBAC can list every one of them.
Neighbours: :mod:`.render` produces the input,
:mod:`~modelgate_operator.reconciling.committing` writes the plan.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass

from modelgate_gateway.config.sharding import (
    HEAD_KEY,
    INDEX_KEY,
    ConfigIndex,
    Part,
    TooLarge,
    bucket_count,
    sha256_hex,
    shard_key,
    split_document,
)

from ..settings import OperatorSettings
from .render import Rendered
from .sizing import INDEX_RESERVE_BYTES, OBJECT_BUDGET_BYTES, SHARD_TARGET_BYTES

CONFIGMAP = "ConfigMap"
SECRET = "Secret"  # noqa: S105 (a kind, not a secret)
ObjectRef = tuple[str, str]
"""(kind, name) of an object in the gateway's namespace."""
Identity = tuple[str, tuple[tuple[str, str], ...], tuple[str, ...]]


def config_object(settings: OperatorSettings, bucket: int) -> str:
    return f"{settings.configmap}-{bucket}"


def secret_object(settings: OperatorSettings, bucket: int) -> str:
    return settings.secret if bucket == 0 else f"{settings.secret}-{bucket}"


def allowed_objects(settings: OperatorSettings) -> frozenset[ObjectRef]:
    """Every object the operator may ever write for its gateway (what the chart's RBAC names)."""
    configmaps = [settings.configmap] + [config_object(settings, b) for b in range(settings.max_shards)]
    secrets = [secret_object(settings, b) for b in range(settings.max_shards)]
    return frozenset([(CONFIGMAP, n) for n in configmaps] + [(SECRET, n) for n in secrets])


def identity_of(index: ConfigIndex | None) -> Identity | None:
    """What makes two published sets the same: the document and where its parts and keys are.

    The head's hash is left out: it carries the generation, which a re-publish would bump.
    """
    if index is None:
        return None
    return (index.checksum, tuple((p.object, p.sha256) for p in index.shards), index.secrets)


@dataclass(frozen=True, slots=True)
class Layout:
    """The objects one rendered config is published as, with their exact content."""

    index: ConfigIndex
    configmaps: Mapping[str, Mapping[str, str]]
    """Name -> data; the first is ``<configmap>`` (index and head), then the shards."""
    secrets: Mapping[str, Mapping[str, bytes]]
    """Name -> the exact keys it should hold."""
    size: int
    """Bytes of the whole document."""

    @property
    def identity(self) -> Identity:
        identity = identity_of(self.index)
        assert identity is not None
        return identity

    @property
    def objects(self) -> frozenset[ObjectRef]:
        return frozenset([(CONFIGMAP, n) for n in self.configmaps] + [(SECRET, n) for n in self.secrets])


def _key_hash(key: str) -> int:
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big")


def secret_buckets(data: Mapping[str, bytes], settings: OperatorSettings) -> dict[str, dict[str, bytes]]:
    """Upstream keys by Secret: all in ``<secret>`` while they fit the target, else by key hash."""
    sizes = {key: len(key) + len(value) for key, value in data.items()}
    hashes = {key: _key_hash(key) for key in data}
    count = bucket_count(hashes, sizes, 0, target=SHARD_TARGET_BYTES, limit=OBJECT_BUDGET_BYTES,
                         max_buckets=settings.max_shards)
    if count is None:
        raise TooLarge(f"the upstream keys are {sum(sizes.values()):,} bytes and do not fit in "
                       f"{settings.max_shards} Secrets of at most {OBJECT_BUDGET_BYTES:,} bytes each",
                       sum(sizes.values()), {})
    buckets: dict[str, dict[str, bytes]] = {secret_object(settings, b): {} for b in range(count)}
    for key in sorted(data):
        buckets[secret_object(settings, hashes[key] & (count - 1))][key] = data[key]
    return buckets


def plan(rendered: Rendered, settings: OperatorSettings) -> Layout:
    """The layout of ``rendered``; raises :class:`TooLarge` when no allowed split fits."""
    data = rendered.data or json.loads(rendered.document)
    split = split_document(data, first_routed=rendered.base_entries, target=SHARD_TARGET_BYTES,
                           limit=OBJECT_BUDGET_BYTES, max_shards=settings.max_shards,
                           reserve=INDEX_RESERVE_BYTES)
    secrets = secret_buckets(rendered.secret_data, settings)
    shards = tuple(Part(config_object(settings, b), shard_key(b), sha256_hex(shard))
                   for b, shard in enumerate(split.shards))
    index = ConfigIndex(checksum=rendered.checksum, generation=rendered.config.metadata.generation,
                        head=Part(settings.configmap, HEAD_KEY, sha256_hex(split.head)),
                        shards=shards, secrets=tuple(secrets))
    configmaps: dict[str, Mapping[str, str]] = {
        settings.configmap: {INDEX_KEY: index.to_bytes().decode(), HEAD_KEY: split.head.decode()}}
    for part, shard in zip(shards, split.shards, strict=True):
        configmaps[part.object] = {part.key: shard.decode()}
    return Layout(index=index, configmaps=configmaps, secrets=secrets, size=split.size)
