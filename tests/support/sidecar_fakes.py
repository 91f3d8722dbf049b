"""In-memory stand-ins for the sidecar part of a reconcile pass: one fake store per namespace
(:class:`kube_fake.FakeKube`), injected pods as the API lists them, and a probe answering with
the checksum each namespace has published (as a sidecar that follows its document does)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kube_fake import CONFIGMAP, SECRET, FakeKube
from modelgate_operator.injection.mutation import ADMIN_PORT_NAME, CONTAINER, SIDECAR_LABEL
from modelgate_operator.injection.settings import InjectionSettings
from modelgate_operator.injection.template import SidecarTemplate
from modelgate_operator.kube.objects import PodEndpoint
from modelgate_operator.reconciling.committing import CHECKSUM_ANNOTATION
from modelgate_operator.reconciling.sidecars import Probe, SidecarReconciler
from modelgate_operator.settings import OperatorSettings

# FakeKube assembles the document of the shared gateway's object names: the sidecars use them here.
TEMPLATE = SidecarTemplate(image="ghcr.io/modelgate/gateway:0.1.0", configmap=CONFIGMAP, secret=SECRET)


def running_pod(namespace: str, name: str, ip: str) -> dict[str, Any]:
    """An injected pod, running, as the operator lists it."""
    return {
        "metadata": {"namespace": namespace, "name": name, "labels": {SIDECAR_LABEL: TEMPLATE.gateway}},
        "spec": {"initContainers": [{"name": CONTAINER, "ports": [{"name": ADMIN_PORT_NAME, "containerPort": 14090}]}]},
        "status": {"phase": "Running", "podIP": ip},
    }


class SidecarApi:
    """The sidecar API calls over one fake store per namespace (created on first use)."""

    def __init__(self, stores: dict[str, FakeKube] | None = None, pods: Sequence[dict[str, Any]] = ()) -> None:
        self.stores = stores if stores is not None else {}
        self.pods = list(pods)

    def list_pods(self, label_selector: str, namespaces: tuple[str, ...]) -> list[dict[str, Any]]:
        return self.pods

    def list_secrets(self, label_selector: str, namespaces: tuple[str, ...]) -> list[dict[str, Any]]:
        return []

    def read_namespace_secret(self, namespace: str, name: str) -> dict[str, bytes] | None:
        return None

    def store(self, namespace: str, configmap: str, secret: str) -> Any:
        return self.stores.setdefault(namespace, FakeKube())

    def set_role_binding(self, namespace: str, name: str, cluster_role: str, service_accounts: list[str]) -> bool:
        return True

    def delete_role_binding(self, namespace: str, name: str) -> None:
        return None

    def published(self, namespace: str) -> str | None:
        """The checksum the namespace's ConfigMap says is published."""
        head = self.stores[namespace].objects.get(("ConfigMap", CONFIGMAP)) if namespace in self.stores else None
        return head.annotations.get(CHECKSUM_ANNOTATION) if head is not None else None

    def following_probe(self) -> Probe:
        """Every running sidecar serves what its namespace has published (pod names are unique here)."""
        where = {p["metadata"]["name"]: p["metadata"]["namespace"] for p in self.pods}

        def probe(pods: Sequence[PodEndpoint], _timeout: float) -> list[str | None]:
            return [self.published(where[p.name]) for p in pods]

        return probe


def sidecar_reconciler(api: SidecarApi, probe: Probe | None = None) -> SidecarReconciler:
    injection = InjectionSettings(
        template_path="unused", namespace="platform", sharing_namespaces=frozenset({"platform"})
    )
    return SidecarReconciler(OperatorSettings(), injection, TEMPLATE, api, probe or (lambda pods, _: []))
