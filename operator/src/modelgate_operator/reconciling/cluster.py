"""The cluster as the reconcile loop sees it: the calls one pass makes, as a Protocol.

:class:`~modelgate_operator.kube.client.KubeClient` provides them; the loop depends on this
instead, so it never imports ``kubernetes`` (an import contract checks it) and tests hand it an
in-memory cluster. Failures are :class:`~modelgate_operator.errors.KubeApiError`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from ..kube.objects import PodEndpoint, Stored


class Store(Protocol):
    """The gateway namespace's ConfigMaps and Secrets the operator writes (:mod:`.committing`)."""

    def read_object(self, kind: str, name: str) -> Stored | None: ...

    def write_object(self, kind: str, name: str, data: Mapping[str, str | bytes], *,
                     annotations: Mapping[str, str], labels: Mapping[str, str],
                     owners: list[dict[str, Any]], drop: Iterable[str] = ()) -> None: ...

    def delete_object(self, kind: str, name: str) -> None: ...

    def owner_references(self) -> list[dict[str, Any]]: ...


class Cluster(Store, Protocol):
    def list_routes(self) -> list[dict[str, Any]]: ...

    def read_secret(self, namespace: str, name: str) -> dict[str, bytes] | None: ...

    def peering_statuses(self) -> list[dict[str, Any]]: ...

    def gateway_pods(self) -> list[PodEndpoint]: ...

    def patch_route_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> None: ...

    def post_event(self, ref: Mapping[str, Any], event_type: str, reason: str, message: str,
                   now: str) -> None: ...

    def post_base_config_warning(self, message: str, now: str) -> None: ...
