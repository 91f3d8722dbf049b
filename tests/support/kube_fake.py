"""An in-memory stand-in for the operator's KubeClient: the methods one reconcile pass calls."""

from __future__ import annotations

from typing import Any

from modelgate_operator.kube.objects import Published, secret_hash


class FakeKube:
    """The KubeClient methods one pass calls, over in-memory objects."""

    def __init__(self) -> None:
        self.routes: list[dict[str, Any]] = []
        self.configmap: tuple[bytes, str, int] | None = None
        self.secret: dict[str, bytes] = {}
        self.secret_writes = 0
        self.events: list[tuple[str, str, str]] = []

    def list_routes(self) -> list[dict[str, Any]]:
        return self.routes

    def read_secret(self, namespace: str, name: str) -> dict[str, bytes] | None:
        return {"api-key": b"sk"} if (namespace, name) == ("default", "openai") else None

    def read_published(self) -> Published:
        if self.configmap is None:
            return Published()
        _, checksum, generation = self.configmap
        return Published(checksum, generation, secret_hash(self.secret) if self.secret_writes else None)

    def current_secret_keys(self) -> set[str]:
        return set(self.secret)

    def publish_secret(self, data: Any, previous: set[str]) -> str:
        self.secret = dict(data)
        self.secret_writes += 1
        return secret_hash(data)

    def publish_config(self, document: bytes, checksum: str, generation: int) -> None:
        self.configmap = (document, checksum, generation)

    def gateway_pods(self) -> list[Any]:
        return []

    def patch_route_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        body = next(r for r in self.routes if r["metadata"]["name"] == name)
        body["status"] = status

    def post_event(self, ref: Any, event_type: str, reason: str, message: str, now: str) -> None:
        self.events.append((ref["metadata"]["name"], event_type, reason))

    def ready(self, name: str) -> tuple[str, str]:
        body = next(r for r in self.routes if r["metadata"]["name"] == name)
        cond = next(c for c in body["status"]["conditions"] if c["type"] == "Ready")
        return cond["status"], cond["reason"]
