"""The Kubernetes calls of sidecar mode, on the operator's Kubernetes client.

Built on :class:`~..kube.client.KubeClient` (the only module importing ``kubernetes``) and its
:func:`~..kube.client.call_api`, so every failure is a ``KubeApiError`` (``KubeNotFound`` for a
404) as everywhere in the operator. Blocking: call it from threads. A lost optimistic-concurrency
race is a ``False`` return, not an error.
"""

from __future__ import annotations

import base64
import dataclasses
import json
from collections.abc import Iterable, Mapping
from typing import Any

from ..errors import KubeApiError
from ..kube.client import MANAGED_BY, KubeClient, call_api, unless_missing
from ..kube.objects import Stored

_MERGE = "application/merge-patch+json"
_JSON_PATCH = "application/json-patch+json"


def _conflict(exc: KubeApiError) -> bool:
    return getattr(exc.__cause__, "status", None) == 409


def _json(response: Any) -> Any:
    try:
        return json.loads(response.data)
    finally:
        response.release_conn()


class NamespaceStore:
    """The kube client confined to one sidecar namespace, as the committer's store.

    No owner references: an owner must live in the same namespace, and nothing there owns the
    sidecar objects; the operator deletes them itself when the namespace needs them no more.
    """

    def __init__(self, kube: KubeClient) -> None:
        self.kube = kube

    def read_object(self, kind: str, name: str) -> Stored | None:
        return self.kube.read_object(kind, name)

    def write_object(
        self,
        kind: str,
        name: str,
        data: Mapping[str, str | bytes],
        *,
        annotations: Mapping[str, str],
        labels: Mapping[str, str],
        owners: list[dict[str, Any]],
        drop: Iterable[str] = (),
    ) -> None:
        self.kube.write_object(kind, name, data, annotations=annotations, labels=labels, owners=owners, drop=drop)

    def delete_object(self, kind: str, name: str) -> None:
        self.kube.delete_object(kind, name)

    def owner_references(self) -> list[dict[str, Any]]:
        return []


class InjectionClient:
    """What sidecar mode reads and writes: the webhook's Secret and configuration, injected
    pods, per-namespace objects and RoleBindings."""

    def __init__(self, kube: KubeClient) -> None:
        self.kube = kube
        self.core = kube.core
        self.rbac = kube.rbac
        self.admission = kube.admission

    # --- the webhook's certificates (injection.certstore) ---------------------------------

    def read_secret(self, namespace: str, name: str) -> tuple[dict[str, bytes], str | None] | None:
        """The Secret's decoded data and resourceVersion, or None when it does not exist."""
        secret = unless_missing(f"read Secret {namespace}/{name}", self.core.read_namespaced_secret, name, namespace)
        if secret is None:
            return None
        data = {k: base64.b64decode(v) for k, v in (secret.data or {}).items()}
        return data, (secret.metadata.resource_version if secret.metadata else None)

    def create_secret(self, namespace: str, name: str, data: Mapping[str, bytes]) -> bool:
        """Create the Secret; False when another replica created it first."""
        body = {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "Opaque",
            "metadata": {"name": name, "namespace": namespace, "labels": MANAGED_BY},
            "data": {k: base64.b64encode(v).decode() for k, v in data.items()},
        }
        try:
            call_api(f"create Secret {namespace}/{name}", self.core.create_namespaced_secret, namespace, body)
        except KubeApiError as exc:
            if _conflict(exc):
                return False
            raise
        return True

    def update_secret(
        self,
        namespace: str,
        name: str,
        data: Mapping[str, bytes],
        old: Mapping[str, bytes],
        resource_version: str | None,
    ) -> bool:
        """Replace the Secret's data if nobody changed it since ``resource_version``; else False."""
        encoded: dict[str, str | None] = {k: base64.b64encode(v).decode() for k, v in data.items()}
        encoded.update({k: None for k in old if k not in data})
        body: dict[str, Any] = {"data": encoded}
        if resource_version:
            body["metadata"] = {"resourceVersion": resource_version}
        try:
            call_api(
                f"patch Secret {namespace}/{name}",
                self.core.patch_namespaced_secret,
                name,
                namespace,
                body,
                _content_type=_MERGE,
            )
        except KubeApiError as exc:
            if _conflict(exc):
                return False
            raise
        return True

    def read_webhook_configuration(self, name: str) -> dict[str, Any] | None:
        response = unless_missing(
            f"read MutatingWebhookConfiguration {name}",
            self.admission.read_mutating_webhook_configuration,
            name,
            _preload_content=False,
        )
        body = _json(response) if response is not None else None
        return body if isinstance(body, dict) else None

    def set_ca_bundle(self, name: str, index: int, webhook: str, bundle: bytes) -> None:
        """Set one webhook's caBundle; the ``test`` op makes a reordered list fail, not mis-patch."""
        patch = [
            {"op": "test", "path": f"/webhooks/{index}/name", "value": webhook},
            {
                "op": "add",
                "path": f"/webhooks/{index}/clientConfig/caBundle",
                "value": base64.b64encode(bundle).decode(),
            },
        ]
        call_api(
            f"patch caBundle of MutatingWebhookConfiguration {name}",
            self.admission.patch_mutating_webhook_configuration,
            name,
            patch,
            _content_type=_JSON_PATCH,
        )

    # --- sidecar namespaces (reconciling.sidecars) -----------------------------------------

    def list_pods(self, label_selector: str, namespaces: tuple[str, ...]) -> list[dict[str, Any]]:
        """Pods with the label, everywhere (``namespaces`` empty) or in the given namespaces."""
        return self._list("pods", label_selector, namespaces)

    def list_secrets(self, label_selector: str, namespaces: tuple[str, ...]) -> list[dict[str, Any]]:
        """Secrets with the label, everywhere or in the given namespaces."""
        return self._list("secrets", label_selector, namespaces)

    def _list(self, plural: str, label_selector: str, namespaces: tuple[str, ...]) -> list[dict[str, Any]]:
        everywhere, namespaced = {
            "pods": (self.core.list_pod_for_all_namespaces, self.core.list_namespaced_pod),
            "secrets": (self.core.list_secret_for_all_namespaces, self.core.list_namespaced_secret),
        }[plural]
        answers: list[Any] = []
        if not namespaces:
            answers.append(
                call_api(
                    f"list {plural} ({label_selector})",
                    everywhere,
                    label_selector=label_selector,
                    _preload_content=False,
                )
            )
        for namespace in namespaces:
            answers.append(
                call_api(
                    f"list {plural} in {namespace} ({label_selector})",
                    namespaced,
                    namespace,
                    label_selector=label_selector,
                    _preload_content=False,
                )
            )
        return [item for answer in answers for item in _json(answer).get("items") or []]

    def read_namespace_secret(self, namespace: str, name: str) -> dict[str, bytes] | None:
        return self.kube.read_secret(namespace, name)

    def store(self, namespace: str, configmap: str, secret: str) -> NamespaceStore:
        """The committer's store for a namespace's sidecar objects."""
        settings = dataclasses.replace(
            self.kube.settings, gateway_namespace=namespace, configmap=configmap, secret=secret
        )
        return NamespaceStore(KubeClient(settings, self.core.api_client))

    def set_role_binding(self, namespace: str, name: str, cluster_role: str, service_accounts: list[str]) -> bool:
        """Bind ``cluster_role`` in ``namespace`` to exactly these ServiceAccounts; True if written."""
        subjects = [{"kind": "ServiceAccount", "name": sa, "namespace": namespace} for sa in service_accounts]
        current = unless_missing(
            f"read RoleBinding {namespace}/{name}",
            self.rbac.read_namespaced_role_binding,
            name,
            namespace,
            _preload_content=False,
        )
        if current is None:
            body = {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": {"name": name, "namespace": namespace, "labels": MANAGED_BY},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": cluster_role},
                "subjects": subjects,
            }
            call_api(
                f"create RoleBinding {namespace}/{name}", self.rbac.create_namespaced_role_binding, namespace, body
            )
            return True
        if (_json(current).get("subjects") or []) == subjects:
            return False
        call_api(
            f"patch RoleBinding {namespace}/{name}",
            self.rbac.patch_namespaced_role_binding,
            name,
            namespace,
            {"subjects": subjects},
            _content_type=_MERGE,
        )
        return True

    def delete_role_binding(self, namespace: str, name: str) -> None:
        """Delete the RoleBinding (already gone is fine)."""
        unless_missing(
            f"delete RoleBinding {namespace}/{name}", self.rbac.delete_namespaced_role_binding, name, namespace
        )
