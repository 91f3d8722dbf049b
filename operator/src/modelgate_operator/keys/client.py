"""The API calls of ModelGateKeys: list them, generate a missing Secret, write their status.

Kubernetes client module (blocking; call from the reconcile thread). Errors are the publisher's
:class:`~..errors.KubeApiError` (retry later); a missing ModelGateKey CRD is no error: an operator
installed before it serves the base config's keys alone, and says so once.
"""

from __future__ import annotations

import base64
import logging
import secrets
from collections.abc import Mapping
from typing import Any

from ..errors import KubeNotFound
from ..kube.client import KubeClient, call_api
from .resources import GROUP, KIND, PLURAL, VERSION, GateKey

log = logging.getLogger("modelgate_operator.keys")
_MERGE = "application/merge-patch+json"
GENERATED_PREFIX = "sk-mg-"


class KeyClient:
    def __init__(self, kube: KubeClient) -> None:
        self.kube = kube
        self._crd_missing = False

    def list_keys(self) -> list[dict[str, Any]]:
        s = self.kube.settings
        custom = self.kube.custom
        try:
            if s.clusterwide:
                found: Any = call_api("list ModelGateKeys", custom.list_cluster_custom_object, GROUP, VERSION, PLURAL)
                items = list(found.get("items", []))
            else:
                items = []
                for namespace in s.namespaces:
                    found = call_api(f"list ModelGateKeys in {namespace}", custom.list_namespaced_custom_object,
                                  GROUP, VERSION, namespace, PLURAL)
                    items.extend(found.get("items", []))
        except KubeNotFound:
            if not self._crd_missing:
                log.warning("the ModelGateKey CRD is not installed: only the base config's keys are served")
            self._crd_missing = True
            return []
        self._crd_missing = False
        return items

    def read_secret(self, namespace: str, name: str) -> dict[str, bytes] | None:
        return self.kube.read_secret(namespace, name)

    def generate_secret(self, key: GateKey) -> dict[str, bytes]:
        """Create the key's Secret with a random key, owned by the ModelGateKey; returns its data."""
        value = (GENERATED_PREFIX + secrets.token_urlsafe(32)).encode()
        body = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                "metadata": {"name": key.secret_name, "namespace": key.namespace,
                             "labels": {"app.kubernetes.io/managed-by": "modelgate-operator"},
                             "ownerReferences": [{"apiVersion": f"{GROUP}/{VERSION}", "kind": KIND,
                                                  "name": key.name, "uid": key.uid}]},
                "data": {key.secret_key: base64.b64encode(value).decode()}}
        call_api(f"create Secret {key.namespace}/{key.secret_name}", self.kube.core.create_namespaced_secret,
              key.namespace, body)
        log.info("generated the key of ModelGateKey %s/%s in Secret %s", key.namespace, key.name, key.secret_name)
        return {key.secret_key: value}

    def patch_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> None:
        try:
            call_api(f"patch status of ModelGateKey {namespace}/{name}",
                     self.kube.custom.patch_namespaced_custom_object_status,
                     GROUP, VERSION, namespace, PLURAL, name, {"status": dict(status)}, _content_type=_MERGE)
        except KubeNotFound:  # deleted meanwhile
            pass
