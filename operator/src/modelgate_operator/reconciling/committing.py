"""Write a :class:`~.layout.Layout` in the order that keeps every state a gateway can see usable.

Gateways follow the ConfigMaps and Secrets separately (watches, or kubelet-refreshed mounts), so
any order of arrival must be safe. One pass therefore writes, each only where it changed:

1. the upstream keys, **adding** what the new config needs and removing nothing yet, so a
   gateway that sees the new config first finds its keys, and one that still runs the old
   config keeps its keys;
2. the config shards, before the index names them;
3. the index and head (``<configmap>``): the commit point; a gateway assembles only the set it
   names, by hash, so it never applies a mix of old and new shards;
4. later, once every gateway pod serves the new document (or after the rollout deadline), the
   clean-up: keys no config uses any more are pruned, and shards and Secrets the layout no
   longer uses are deleted.

What the operator keeps is recorded on ``<configmap>`` (annotation :data:`OBJECTS_ANNOTATION`),
so a restarted or newly elected replica finishes a clean-up it did not start. Neighbours:
:mod:`~modelgate_operator.rendering.layout` plans, :mod:`~modelgate_operator.kube.client` talks to
the API.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from modelgate_gateway.config.sharding import INDEX_KEY, ConfigIndex, IndexUnreadable

from ..errors import KubeApiError
from ..kube.objects import Stored, content_hash
from ..rendering.layout import CONFIGMAP, SECRET, Identity, Layout, ObjectRef, identity_of
from ..settings import OperatorSettings
from .cluster import Store

logger = logging.getLogger("modelgate_operator")

CHECKSUM_ANNOTATION = "modelgate.dev/config-checksum"
GENERATION_ANNOTATION = "modelgate.dev/config-generation"
HASH_ANNOTATION = "modelgate.dev/content-hash"
OBJECTS_ANNOTATION = "modelgate.dev/objects"
"""On ``<configmap>``: every ConfigMap and Secret the operator keeps for its gateway
(``ConfigMap/name,Secret/name,…``), including those a pending clean-up will delete."""
KNOWN_SECONDS = 300.0
"""How long a replica trusts what it last read or wrote of an object: after that every object is
read again, so an object edited or deleted behind the operator's back is repaired within five
minutes (the gateways keep their last complete set meanwhile)."""
SHARD_LABEL = "modelgate.dev/config-of"
"""On every object the operator writes: the gateway ConfigMap it belongs to."""


@dataclass(frozen=True, slots=True)
class Published:
    """What ``<configmap>`` says is published now."""

    checksum: str | None = None
    generation: int = 0
    index: ConfigIndex | None = None
    objects: frozenset[ObjectRef] = frozenset()

    @property
    def identity(self) -> Identity | None:
        return identity_of(self.index)


def _objects(raw: str | None, settings: OperatorSettings) -> frozenset[ObjectRef]:
    if raw is None:  # written before sharding: one ConfigMap, one Secret
        return frozenset({(CONFIGMAP, settings.configmap), (SECRET, settings.secret)})
    found = (item.partition("/") for item in raw.split(",") if item)
    return frozenset((kind, name) for kind, _, name in found if kind in (CONFIGMAP, SECRET) and name)


def _objects_text(objects: frozenset[ObjectRef]) -> str:
    return ",".join(f"{kind}/{name}" for kind, name in sorted(objects))


@dataclass(slots=True)
class Committer:
    """Runs steps 1 to 3 (:meth:`write`) and 4 (:meth:`clean_up`) for one operator replica."""

    store: Store
    settings: OperatorSettings
    writes: int = 0
    """Objects written or deleted so far (tests and logs)."""
    bytes_written: int = 0
    """Payload bytes of the objects written so far."""
    _keys: dict[str, dict[str, bytes]] = field(default_factory=dict)
    """What each upstream-keys Secret holds after this pass's writes."""
    _known: dict[ObjectRef, Stored | None] = field(default_factory=dict)
    """Objects as this replica last read or wrote them, so a pass over an unchanged layout reads
    nothing (32 shards of a large config are megabytes). Forgotten after :data:`KNOWN_SECONDS`,
    on any API error, when another replica published, and while standing by for a peer."""
    _known_since: float = 0.0
    _generation: int | None = None
    clock: Callable[[], float] = time.monotonic

    def forget(self) -> None:
        """Read every object from the API again next time."""
        self._known.clear()
        self._generation = None

    def _read(self, kind: str, name: str) -> Stored | None:
        key = (kind, name)
        if key not in self._known:
            self._known[key] = self.store.read_object(kind, name)
        return self._known[key]

    def read(self) -> Published:
        """What ``<configmap>`` says is published; always read from the API."""
        if self.clock() - self._known_since > KNOWN_SECONDS:
            self.forget()
            self._known_since = self.clock()
        stored = self.store.read_object(CONFIGMAP, self.settings.configmap)
        published = self._published(stored)
        if published.generation != self._generation:
            self.forget()  # written by someone else (another replica): trust nothing remembered
        return published

    def _published(self, stored: Stored | None) -> Published:
        if stored is None:
            return Published()
        notes = stored.annotations
        generation = notes.get(GENERATION_ANNOTATION, "0")
        index = None
        raw = stored.data.get(INDEX_KEY)
        if raw is not None:
            try:
                index = ConfigIndex.parse(raw)
            except IndexUnreadable as exc:  # rewritten by this pass
                logger.warning("the published config index is unreadable: %s", exc)
        return Published(checksum=notes.get(CHECKSUM_ANNOTATION),
                         generation=int(generation) if generation.isdigit() else 0, index=index,
                         objects=_objects(notes.get(OBJECTS_ANNOTATION), self.settings))

    def _write(self, kind: str, name: str, data: Mapping[str, str | bytes], stored: Stored | None,
               owners: list[dict[str, Any]], extra: Mapping[str, str] | None = None) -> bool:
        digest = content_hash(data)
        annotations = {HASH_ANNOTATION: digest, **(extra or {})}
        if stored is not None and all(stored.annotations.get(k) == v for k, v in annotations.items()):
            return False
        drop = set(stored.data) - set(data) if stored is not None else set()
        self._known.pop((kind, name), None)  # unknown until the write went through
        self.store.write_object(kind, name, data, annotations=annotations, owners=owners,
                                labels={SHARD_LABEL: self.settings.configmap}, drop=drop)
        self._known[(kind, name)] = Stored(data=dict(data), annotations=annotations)
        self.writes += 1
        self.bytes_written += sum(len(v) for v in data.values())
        return True

    def write(self, layout: Layout, published: Published) -> bool:
        """Steps 1 to 3; True when the index was written (a new document or a new layout)."""
        try:
            return self._write_all(layout, published)
        except Exception:
            self.forget()  # a write may or may not have happened
            raise

    def _write_all(self, layout: Layout, published: Published) -> bool:
        owners = self.store.owner_references()
        self._keys = {}
        for name, exact in layout.secrets.items():
            stored = self._read(SECRET, name)
            kept = {k: v for k, v in (stored.data if stored else {}).items() if isinstance(v, bytes)}
            merged = {**kept, **exact}  # add and rotate now, prune after the rollout
            self._write(SECRET, name, merged, stored, owners)
            self._keys[name] = merged
        head, *shards = layout.configmaps.items()
        for name, data in shards:
            self._write(CONFIGMAP, name, data, self._read(CONFIGMAP, name), owners)
        self._generation = published.generation
        if layout.identity == published.identity:
            return False
        objects = published.objects | layout.objects  # the retired ones stay listed until deleted
        index = layout.index
        self._write(CONFIGMAP, head[0], head[1], None, owners, {
            CHECKSUM_ANNOTATION: index.checksum, GENERATION_ANNOTATION: str(index.generation),
            OBJECTS_ANNOTATION: _objects_text(objects)})
        self._generation = index.generation
        return True

    def clean_up(self, layout: Layout, recorded: frozenset[ObjectRef], served: bool) -> bool:
        """Step 4 once ``served``; True while a clean-up is left to do (poll again)."""
        retired = recorded - layout.objects
        stale_keys = {name for name, exact in layout.secrets.items() if self._keys.get(name, exact) != exact}
        if not retired and not stale_keys:
            return False
        if not served:
            return True
        try:
            self._clean(layout, retired, stale_keys)
        except Exception:
            self.forget()
            raise
        return False

    def _clean(self, layout: Layout, retired: frozenset[ObjectRef], stale_keys: set[str]) -> None:
        owners = self.store.owner_references()
        pruned = 0
        for name in sorted(stale_keys):
            pruned += len(set(self._keys.get(name, {})) - set(layout.secrets[name]))
            self._write(SECRET, name, layout.secrets[name], self._read(SECRET, name), owners)
            self._keys[name] = dict(layout.secrets[name])
        for kind, name in sorted(retired):
            self._known.pop((kind, name), None)
            try:
                self.store.delete_object(kind, name)
            except KubeApiError as exc:
                # E.g. operator.maxConfigShards was lowered and RBAC no longer names it. Left in
                # place: nothing reads it (no index names it) and it goes with the gateway
                # Deployment that owns it; failing the pass for it would stall every route.
                logger.warning("could not delete the unused %s %s, left in place: %s", kind, name, exc)
                continue
            self.writes += 1
        if retired:
            self.store.write_object(CONFIGMAP, self.settings.configmap, {},
                                    annotations={OBJECTS_ANNOTATION: _objects_text(layout.objects)},
                                    labels={SHARD_LABEL: self.settings.configmap}, owners=owners)
            self.writes += 1
        logger.info("rollout done: pruned %d unused keys, deleted %d unused objects (%s)", pruned,
                    len(retired), _objects_text(frozenset(retired)) or "none")
