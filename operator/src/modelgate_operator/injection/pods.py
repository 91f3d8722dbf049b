"""Injected pods as the operator sees them: where they are, who they run as, where to probe.

Pure: :func:`sidecar_pod` reads a raw Pod (as listed by label ``modelgate.dev/sidecar``). The
namespaces and ServiceAccounts of these pods decide which namespaces get a sidecar document and
who the per-namespace RoleBinding names; their admin ports give the rollout count.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .mutation import ADMIN_PORT_NAME, CONTAINER


@dataclass(frozen=True, slots=True)
class SidecarPod:
    namespace: str
    name: str
    service_account: str
    ip: str | None
    """Pod IP while the pod is Running, else None (not probed, not counted as serving)."""
    admin_port: int | None

    @property
    def probeable(self) -> bool:
        return self.ip is not None and self.admin_port is not None


def sidecar_pod(body: Mapping[str, Any]) -> SidecarPod | None:
    """The injected pod, or None when it carries no sidecar (or is on its way out)."""
    meta = body.get("metadata") or {}
    spec = body.get("spec") or {}
    status = body.get("status") or {}
    if meta.get("deletionTimestamp") or not meta.get("namespace") or not meta.get("name"):
        return None
    sidecar = next((c for c in spec.get("initContainers") or [] if c.get("name") == CONTAINER), None)
    if sidecar is None:
        return None
    ports = [p.get("containerPort") for p in sidecar.get("ports") or [] if p.get("name") == ADMIN_PORT_NAME]
    admin_port = ports[0] if ports and isinstance(ports[0], int) else None
    running = status.get("phase") == "Running" and bool(status.get("podIP"))
    return SidecarPod(
        namespace=str(meta["namespace"]),
        name=str(meta["name"]),
        service_account=str(spec.get("serviceAccountName") or "default"),
        ip=str(status["podIP"]) if running else None,
        admin_port=admin_port,
    )


def pod_fingerprint(body: Mapping[str, Any]) -> list[Any]:
    """What the reconcile pass reads of an injected pod: a change of any of it must wake the loop.

    Its ServiceAccount (the RoleBinding's subjects), whether it runs and where (the rollout
    count probes it), whether it is ready (a restarted sidecar may serve an older document) and
    whether it is on its way out (the namespace may need no document any more).
    """
    meta = body.get("metadata") or {}
    spec = body.get("spec") or {}
    status = body.get("status") or {}
    ready = next((c.get("status") for c in status.get("conditions") or [] if c.get("type") == "Ready"), None)
    return [
        spec.get("serviceAccountName"),
        status.get("phase"),
        status.get("podIP"),
        ready,
        meta.get("deletionTimestamp"),
    ]


def service_accounts(pods: Iterable[SidecarPod]) -> dict[str, list[str]]:
    """Namespace -> the sorted ServiceAccounts its injected pods run as."""
    found: dict[str, set[str]] = {}
    for pod in pods:
        found.setdefault(pod.namespace, set()).add(pod.service_account)
    return {namespace: sorted(names) for namespace, names in found.items()}
