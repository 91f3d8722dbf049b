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

    def set_ca_bundle(self, name: str, index: int, webhook: str, bundle: bytes) -> None:
        """Set one webhook's caBundle; the ``test`` op makes a reordered list fail, not mis-patch."""
        patch = [{"op": "test", "path": f"/webhooks/{index}/name", "value": webhook},
                 {"op": "add", "path": f"/webhooks/{index}/clientConfig/caBundle",
                  "value": base64.b64encode(bundle).decode()}]
        _call(f"patch caBundle of MutatingWebhookConfiguration {name}",
              self.admission.patch_mutating_webhook_configuration, name, patch, _content_type=_JSON_PATCH)
