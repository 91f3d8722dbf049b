"""The Kubernetes calls of sidecar mode, through the blocking ``kubernetes`` client.

Call from threads, never from the event loop. Errors become :class:`~..errors.PublishError` as in
:mod:`..publishing` (whose call wrapper this reuses); a lost optimistic-concurrency race is a
``False`` return, not an error.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any

from kubernetes import client

from ..errors import PublishError
from ..publishing import MANAGED_BY, _call, _not_found

_MERGE = "application/merge-patch+json"
_JSON_PATCH = "application/json-patch+json"


def _conflict(exc: PublishError) -> bool:
    cause = exc.__cause__
    return isinstance(cause, client.exceptions.ApiException) and cause.status == 409


class InjectionApi:
    def __init__(self, api: client.ApiClient | None = None) -> None:
        api = api or client.ApiClient()
        self.core = client.CoreV1Api(api)
        self.admission = client.AdmissionregistrationV1Api(api)
        self.rbac = client.RbacAuthorizationV1Api(api)

    def read_secret(self, namespace: str, name: str) -> tuple[dict[str, bytes], str | None] | None:
        """The Secret's decoded data and resourceVersion, or None when it does not exist."""
        try:
            secret = _call(f"read Secret {namespace}/{name}", self.core.read_namespaced_secret, name, namespace)
        except PublishError as exc:
            if _not_found(exc):
                return None
            raise
        data = {k: base64.b64decode(v) for k, v in (secret.data or {}).items()}
        return data, (secret.metadata.resource_version if secret.metadata else None)

    def create_secret(self, namespace: str, name: str, data: Mapping[str, bytes]) -> bool:
        """Create the Secret; False when another replica created it first."""
        body = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                "metadata": {"name": name, "namespace": namespace, "labels": MANAGED_BY},
                "data": {k: base64.b64encode(v).decode() for k, v in data.items()}}
        try:
            _call(f"create Secret {namespace}/{name}", self.core.create_namespaced_secret, namespace, body)
        except PublishError as exc:
            if _conflict(exc):
                return False
            raise
        return True

    def update_secret(self, namespace: str, name: str, data: Mapping[str, bytes],
                      old: Mapping[str, bytes], resource_version: str | None) -> bool:
        """Replace the Secret's data if nobody changed it since ``resource_version``; else False."""
        encoded: dict[str, str | None] = {k: base64.b64encode(v).decode() for k, v in data.items()}
        encoded.update({k: None for k in old if k not in data})
        body: dict[str, Any] = {"data": encoded}
        if resource_version:
            body["metadata"] = {"resourceVersion": resource_version}
        try:
            _call(f"patch Secret {namespace}/{name}", self.core.patch_namespaced_secret, name, namespace,
                  body, _content_type=_MERGE)
        except PublishError as exc:
            if _conflict(exc):
                return False
            raise
        return True

    def read_webhook_configuration(self, name: str) -> dict[str, Any] | None:
        try:
            response: Any = _call(f"read MutatingWebhookConfiguration {name}",
                             self.admission.read_mutating_webhook_configuration, name,
                             _preload_content=False)
        except PublishError as exc:
            if _not_found(exc):
                return None
            raise
        body = json.loads(response.data)
        return body if isinstance(body, dict) else None

    def list_pods(self, label_selector: str, namespaces: tuple[str, ...]) -> list[dict[str, Any]]:
        """Pods with the label, everywhere (``namespaces`` empty) or in the given namespaces."""
        return self._list("pods", label_selector, namespaces)

    def list_secrets(self, label_selector: str, namespaces: tuple[str, ...]) -> list[dict[str, Any]]:
        """Secrets with the label (metadata only is used), everywhere or in the given namespaces."""
        return self._list("secrets", label_selector, namespaces)

    def _list(self, plural: str, label_selector: str, namespaces: tuple[str, ...]) -> list[dict[str, Any]]:
        everywhere, namespaced = {
            "pods": (self.core.list_pod_for_all_namespaces, self.core.list_namespaced_pod),
            "secrets": (self.core.list_secret_for_all_namespaces, self.core.list_namespaced_secret),
        }[plural]
        answers: list[Any] = []
        if not namespaces:
            answers.append(_call(f"list {plural} ({label_selector})", everywhere,
                                 label_selector=label_selector, _preload_content=False))
        for namespace in namespaces:
            answers.append(_call(f"list {plural} in {namespace} ({label_selector})", namespaced, namespace,
                                 label_selector=label_selector, _preload_content=False))
        return [item for answer in answers for item in json.loads(answer.data).get("items") or []]

    def set_role_binding(self, namespace: str, name: str, cluster_role: str, service_accounts: list[str]) -> bool:
        """Bind ``cluster_role`` in ``namespace`` to exactly these ServiceAccounts; True if written."""
        subjects = [{"kind": "ServiceAccount", "name": sa, "namespace": namespace} for sa in service_accounts]
        try:
            current: Any = _call(f"read RoleBinding {namespace}/{name}", self.rbac.read_namespaced_role_binding,
                                 name, namespace, _preload_content=False)
        except PublishError as exc:
            if not _not_found(exc):
                raise
            body = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                    "metadata": {"name": name, "namespace": namespace, "labels": MANAGED_BY},
                    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": cluster_role},
                    "subjects": subjects}
            _call(f"create RoleBinding {namespace}/{name}", self.rbac.create_namespaced_role_binding, namespace, body)
            return True
        if (json.loads(current.data).get("subjects") or []) == subjects:
            return False
        _call(f"patch RoleBinding {namespace}/{name}", self.rbac.patch_namespaced_role_binding, name, namespace,
              {"subjects": subjects}, _content_type=_MERGE)
        return True

    def delete(self, kind: str, namespace: str, name: str) -> None:
        """Delete a ConfigMap, Secret or RoleBinding (already gone is fine)."""
        delete = {"ConfigMap": self.core.delete_namespaced_config_map, "Secret": self.core.delete_namespaced_secret,
                  "RoleBinding": self.rbac.delete_namespaced_role_binding}[kind]
        try:
            _call(f"delete {kind} {namespace}/{name}", delete, name, namespace)
        except PublishError as exc:
            if not _not_found(exc):
                raise

    def set_ca_bundle(self, name: str, index: int, webhook: str, bundle: bytes) -> None:
        """Set one webhook's caBundle; the ``test`` op makes a reordered list fail, not mis-patch."""
        patch = [{"op": "test", "path": f"/webhooks/{index}/name", "value": webhook},
                 {"op": "add", "path": f"/webhooks/{index}/clientConfig/caBundle",
                  "value": base64.b64encode(bundle).decode()}]
        _call(f"patch caBundle of MutatingWebhookConfiguration {name}",
              self.admission.patch_mutating_webhook_configuration, name, patch, _content_type=_JSON_PATCH)
