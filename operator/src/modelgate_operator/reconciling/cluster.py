"""The cluster as the reconcile loop sees it: the calls one pass makes, as a Protocol.

:class:`~modelgate_operator.kube.client.KubeClient` provides them; the loop depends on this
instead, so it never imports ``kubernetes`` (an import contract checks it) and tests hand it an
in-memory cluster. Failures are :class:`~modelgate_operator.errors.KubeApiError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from ..kube.objects import PodEndpoint, Published


class Cluster(Protocol):
    def list_routes(self) -> list[dict[str, Any]]: ...

    def read_secret(self, namespace: str, name: str) -> dict[str, bytes] | None: ...

    def read_published(self) -> Published: ...

    def current_secret_keys(self) -> set[str]: ...

    def publish_secret(self, data: Mapping[str, bytes], previous_keys: set[str]) -> str: ...

    def publish_config(self, document: bytes, checksum: str, generation: int) -> None: ...

    def peering_statuses(self) -> list[dict[str, Any]]: ...

    def gateway_pods(self) -> list[PodEndpoint]: ...

    def patch_route_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> None: ...

    def post_event(self, ref: Mapping[str, Any], event_type: str, reason: str, message: str,
                   now: str) -> None: ...

    def post_base_config_warning(self, message: str, now: str) -> None: ...
