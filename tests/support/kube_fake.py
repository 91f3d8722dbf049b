"""An in-memory stand-in for the operator's KubeClient: the methods one reconcile pass calls."""

from __future__ import annotations

import json
from typing import Any

from modelgate_gateway.config.sharding import HEAD_KEY, INDEX_KEY, ConfigIndex, assemble
from modelgate_operator.kube.objects import Stored

CONFIGMAP = "modelgate-gateway-config"
SECRET = "modelgate-gateway-upstream-keys"


class FakeKube:
    """The KubeClient methods one pass calls, over in-memory objects of the gateway namespace."""

    def __init__(self) -> None:
        self.routes: list[dict[str, Any]] = []
        self.route_secrets: dict[tuple[str, str], dict[str, bytes]] = {("default", "openai"): {"api-key": b"sk"}}
        """Secrets the routes reference, by (namespace, name)."""
        self.objects: dict[tuple[str, str], Stored] = {}
        self.log: list[tuple[str, str, str]] = []
        """(verb, kind, name) of every write and delete, in order."""
        self.reads: list[tuple[str, str]] = []
        self.events: list[tuple[str, str, str]] = []
        self.pod_checksums: list[str | None] = []
        self.after_change: list[Any] = []
        """Called with no arguments after every write and delete (what a gateway could see)."""

    # --- the store -------------------------------------------------------------------------
    def read_object(self, kind: str, name: str) -> Stored | None:
        self.reads.append((kind, name))
        return self.objects.get((kind, name))

    def write_object(self, kind: str, name: str, data: Any, *, annotations: Any, labels: Any,
                     owners: Any, drop: Any = ()) -> None:
        old = self.objects.get((kind, name))
        merged = {**(old.data if old else {}), **data}
        for key in drop:
            merged.pop(key, None)
        notes = {**(old.annotations if old else {}), **annotations}
        self.objects[(kind, name)] = Stored(data=merged, annotations=notes)
        self.log.append(("write", kind, name))
        for observer in self.after_change:
            observer()

    def delete_object(self, kind: str, name: str) -> None:
        self.objects.pop((kind, name), None)
        self.log.append(("delete", kind, name))
        for observer in self.after_change:
            observer()

    def owner_references(self) -> list[dict[str, Any]]:
        return []

    # --- what a gateway would see ------------------------------------------------------------
    def document(self) -> bytes | None:
        """The document the published set assembles to (None: nothing published)."""
        head = self.objects.get(("ConfigMap", CONFIGMAP))
        if head is None:
            return None
        index = ConfigIndex.parse(str(head.data[INDEX_KEY]))
        parts: dict[str, bytes | None] = {HEAD_KEY: str(head.data[HEAD_KEY]).encode()}
        for part in index.shards:
            shard = self.objects.get(("ConfigMap", part.object))
            value = shard.data.get(part.key) if shard else None
            parts[part.key] = str(value).encode() if value is not None else None
        return assemble(index, parts)

    def config(self) -> dict[str, Any] | None:
        document = self.document()
        return json.loads(document) if document is not None else None

    def generation(self) -> int:
        return int(self.objects[("ConfigMap", CONFIGMAP)].annotations["modelgate.dev/config-generation"])

    def keys(self) -> dict[str, bytes]:
        """Every upstream key the gateway's Secrets hold together."""
        found: dict[str, bytes] = {}
        for (kind, name), stored in sorted(self.objects.items()):
            if kind == "Secret" and name.startswith(SECRET):
                found.update({k: v for k, v in stored.data.items() if isinstance(v, bytes)})
        return found

    # --- the rest of a pass --------------------------------------------------------------------
    def list_routes(self) -> list[dict[str, Any]]:
        return self.routes

    def read_secret(self, namespace: str, name: str) -> dict[str, bytes] | None:
        found = self.route_secrets.get((namespace, name))
        return dict(found) if found is not None else None

    def gateway_pods(self) -> list[Any]:
        return [object() for _ in self.pod_checksums]

    def patch_route_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        body = next(r for r in self.routes if r["metadata"]["name"] == name)
        body["status"] = status

    def post_event(self, ref: Any, event_type: str, reason: str, message: str, now: str) -> None:
        self.events.append((ref["metadata"]["name"], event_type, reason))

    def ready(self, name: str) -> tuple[str, str]:
        body = next(r for r in self.routes if r["metadata"]["name"] == name)
        cond = next(c for c in body["status"]["conditions"] if c["type"] == "Ready")
        return cond["status"], cond["reason"]
