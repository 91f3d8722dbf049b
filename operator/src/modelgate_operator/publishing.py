"""Every call the operator makes to the Kubernetes API, through the blocking ``kubernetes`` client.

The only module importing ``kubernetes``; call it from threads (sync kopf handlers or
``asyncio.to_thread``), never from the event loop. Writes use merge patches (create on 404),
never PUT. API failures worth retrying become :class:`~.errors.PublishError`.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException
from urllib3.exceptions import HTTPError as TransportError
from urllib3.exceptions import MaxRetryError

from .errors import PublishError
from .resources import GROUP, PLURAL, VERSION
from .settings import OperatorSettings

CONFIG_KEY = "config.json"
CHECKSUM_ANNOTATION = "modelgate.dev/config-checksum"
GENERATION_ANNOTATION = "modelgate.dev/config-generation"
SECRET_HASH_ANNOTATION = "modelgate.dev/content-hash"  # noqa: S105 (a name, not a secret)
MANAGED_BY = {"app.kubernetes.io/managed-by": "modelgate-operator"}
_MERGE = "application/merge-patch+json"
PEERING_GROUP = "kopf.dev"
PEERING_VERSION = "v1"
# One API call should never hold a reconcile for long; the loop retries on failure anyway.
_REQUEST_TIMEOUT = 10.0
_T = TypeVar("_T")


def load_client_config() -> None:
    """In a pod: the service account; elsewhere: ``$KUBECONFIG`` (read now, not at import)."""
    try:
        config.load_incluster_config()  # type: ignore[no-untyped-call]
    except ConfigException:
        path = os.environ.get("KUBECONFIG") or None
        config.load_kube_config(config_file=path)  # type: ignore[no-untyped-call]


@dataclass(frozen=True, slots=True)
class Published:
    """What the gateway's ConfigMap and Secret hold now, from their annotations."""

    checksum: str | None = None
    generation: int = 0
    secret_hash: str | None = None


@dataclass(frozen=True, slots=True)
class PodEndpoint:
    """A gateway pod's /readyz address."""

    name: str
    ip: str
    port: int


def secret_hash(data: Mapping[str, bytes]) -> str:
    digest = hashlib.sha256()
    for key in sorted(data):
        digest.update(key.encode() + b"\0" + data[key] + b"\0")
    return "sha256:" + digest.hexdigest()


def _transport_reason(exc: TransportError) -> str:
    """One short line for a failed connection: urllib3 wraps the cause (MaxRetryError.reason) and
    prefixes the connection object's repr, e.g. ``<...HTTPSConnection object at 0x...>: Failed to
    establish a new connection: [Errno 111] Connection refused``."""
    cause: BaseException = exc.reason if isinstance(exc, MaxRetryError) and exc.reason else exc
    text = re.sub(r"^<[^>]*>:\s*", "", str(cause)).strip() or type(cause).__name__
    return text.splitlines()[0][:200]


def _call(what: str, fn: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
    """Call the API; every failure worth retrying becomes a :class:`PublishError` (transient).

    urllib3's errors (MaxRetryError when the API server is unreachable, ProtocolError on a reset
    connection, ReadTimeoutError, SSLError) are not OSErrors: they are transport failures, as
    transient as an HTTP 503, and worth one short line rather than a traceback.
    """
    try:
        return fn(*args, _request_timeout=_REQUEST_TIMEOUT, **kwargs)
    except ApiException as exc:
        raise PublishError(f"{what}: HTTP {exc.status} {exc.reason}") from exc
    except TransportError as exc:
        raise PublishError(f"{what}: API server unreachable: {_transport_reason(exc)}") from exc
    except (OSError, ValueError) as exc:
        raise PublishError(f"{what}: {exc}") from exc


def _not_found(exc: PublishError) -> bool:
    cause = exc.__cause__
    return isinstance(cause, ApiException) and cause.status == 404


class KubeGateway:
    """The operator's view of the cluster: routes, Secrets, the gateway's objects and pods."""

    def __init__(self, settings: OperatorSettings, api: client.ApiClient | None = None) -> None:
        self.settings = settings
        api = api or client.ApiClient()
        self.core = client.CoreV1Api(api)
        self.apps = client.AppsV1Api(api)
        self.custom = client.CustomObjectsApi(api)

    # --- reading ---------------------------------------------------------------------------

    def list_routes(self) -> list[dict[str, Any]]:
        """Every ModelRoute in scope, as plain dicts (all namespaces, or the configured ones)."""
        if self.settings.clusterwide:
            found: Any = _call("list ModelRoutes", self.custom.list_cluster_custom_object,
                               GROUP, VERSION, PLURAL)
            return list(found.get("items", []))
        items: list[dict[str, Any]] = []
        for namespace in self.settings.namespaces:
            found = _call(f"list ModelRoutes in {namespace}",
                          self.custom.list_namespaced_custom_object,
                          GROUP, VERSION, namespace, PLURAL)
            items.extend(found.get("items", []))
        return items

    def read_secret(self, namespace: str, name: str) -> dict[str, bytes] | None:
        """A Secret's decoded data, or None when it does not exist."""
        try:
            secret = _call(f"read Secret {namespace}/{name}", self.core.read_namespaced_secret,
                           name, namespace)
        except PublishError as exc:
            if _not_found(exc):
                return None
            raise
        return {k: base64.b64decode(v) for k, v in (secret.data or {}).items()}

    def read_published(self) -> Published:
        s = self.settings
        cm_meta = self._metadata(self.core.read_namespaced_config_map, s.configmap)
        secret_meta = self._metadata(self.core.read_namespaced_secret, s.secret)
        cm_notes = (cm_meta.annotations if cm_meta else None) or {}
        secret_notes = (secret_meta.annotations if secret_meta else None) or {}
        generation = cm_notes.get(GENERATION_ANNOTATION, "0")
        return Published(
            checksum=cm_notes.get(CHECKSUM_ANNOTATION),
            generation=int(generation) if generation.isdigit() else 0,
            secret_hash=secret_notes.get(SECRET_HASH_ANNOTATION),
        )

    def _metadata(self, read: Callable[..., Any], name: str) -> Any:
        try:
            return _call(f"read {name}", read, name, self.settings.gateway_namespace).metadata
        except PublishError as exc:
            if _not_found(exc):
                return None
            raise

    def peering_statuses(self) -> list[dict[str, Any]]:
        """The ``status`` of each kopf peering object this replica peers through.

        All namespaces: the ClusterKopfPeering; otherwise the KopfPeering of each watched
        namespace. Missing objects are left out (kopf does not pause without one either).
        """
        s = self.settings
        statuses = []
        for namespace in ([None] if s.clusterwide else list(s.namespaces)):
            try:
                if namespace is None:
                    body = _call(f"read ClusterKopfPeering {s.peering}",
                                 self.custom.get_cluster_custom_object,
                                 PEERING_GROUP, PEERING_VERSION, "clusterkopfpeerings", s.peering)
                else:
                    body = _call(f"read KopfPeering {namespace}/{s.peering}",
                                 self.custom.get_namespaced_custom_object, PEERING_GROUP,
                                 PEERING_VERSION, namespace, "kopfpeerings", s.peering)
            except PublishError as exc:
                if _not_found(exc):
                    continue
                raise
            status = body.get("status") if isinstance(body, dict) else None
            if isinstance(status, dict):
                statuses.append(status)
        return statuses

    def gateway_pods(self) -> list[PodEndpoint]:
        """Running gateway pods with an IP and a container port named ``http``."""
        s = self.settings
        selector = ",".join(f"{k}={v}" for k, v in sorted(s.pod_selector.items()))
        pods = _call("list gateway pods", self.core.list_namespaced_pod, s.gateway_namespace,
                     label_selector=selector)
        found = []
        for pod in pods.items or []:
            meta, spec, status = pod.metadata, pod.spec, pod.status
            if meta is None or spec is None or status is None or not meta.name:
                continue
            labels = meta.labels or {}
            # Also filter here: a selector is a request, and the result is checked, not trusted.
            if any(labels.get(k) != v for k, v in s.pod_selector.items()):
                continue
            if not status.pod_ip or status.phase != "Running":
                continue
            ports = [p.container_port for c in spec.containers for p in (c.ports or [])
                     if p.name == "http"]
            if ports:
                found.append(PodEndpoint(meta.name, status.pod_ip, ports[0]))
        return sorted(found, key=lambda p: p.name)

    # --- writing ---------------------------------------------------------------------------

    def _owner_references(self) -> list[dict[str, Any]]:
        s = self.settings
        try:
            deployment = _call("read gateway Deployment", self.apps.read_namespaced_deployment,
                               s.gateway_deployment, s.gateway_namespace)
        except PublishError as exc:
            if _not_found(exc):
                return []  # no owner yet: objects stay until the gateway appears and owns them
            raise
        uid = deployment.metadata.uid if deployment.metadata else None
        if not uid:
            return []
        return [{"apiVersion": "apps/v1", "kind": "Deployment", "name": s.gateway_deployment,
                 "uid": uid, "controller": False, "blockOwnerDeletion": False}]

    def _upsert(self, kind: str, name: str, body: dict[str, Any],
                create: Callable[..., Any], patch: Callable[..., Any]) -> None:
        ns = self.settings.gateway_namespace
        try:
            _call(f"patch {kind} {ns}/{name}", patch, name, ns, body, _content_type=_MERGE)
            return
        except PublishError as exc:
            if not _not_found(exc):
                raise
        full = {"apiVersion": "v1", "kind": kind,
                **{k: v for k, v in body.items() if v is not None}}
        full["metadata"] = {**body["metadata"], "name": name, "namespace": ns}
        if kind == "Secret":
            full["data"] = {k: v for k, v in body["data"].items() if v is not None}
        _call(f"create {kind} {ns}/{name}", create, ns, full)

    def publish_secret(self, data: Mapping[str, bytes], previous_keys: set[str]) -> str:
        """Write the upstream-keys Secret; keys no longer needed are removed. Returns its hash."""
        content_hash = secret_hash(data)
        encoded: dict[str, str | None] = {k: base64.b64encode(v).decode() for k, v in data.items()}
        encoded.update({k: None for k in previous_keys - set(data)})
        body = {
            "metadata": {"labels": MANAGED_BY,
                         "annotations": {SECRET_HASH_ANNOTATION: content_hash},
                         "ownerReferences": self._owner_references()},
            "type": "Opaque",
            "data": encoded,
        }
        self._upsert("Secret", self.settings.secret, body, self.core.create_namespaced_secret,
                     self.core.patch_namespaced_secret)
        return content_hash

    def current_secret_keys(self) -> set[str]:
        data = self.read_secret(self.settings.gateway_namespace, self.settings.secret)
        return set(data or {})

    def publish_config(self, document: bytes, checksum: str, generation: int) -> None:
        """Write the rendered document with its checksum and generation annotations."""
        body = {
            "metadata": {
                "labels": MANAGED_BY,
                "annotations": {CHECKSUM_ANNOTATION: checksum,
                                GENERATION_ANNOTATION: str(generation)},
                "ownerReferences": self._owner_references(),
            },
            "data": {CONFIG_KEY: document.decode()},
        }
        self._upsert("ConfigMap", self.settings.configmap, body,
                     self.core.create_namespaced_config_map, self.core.patch_namespaced_config_map)

    def post_event(self, ref: Mapping[str, Any], event_type: str, reason: str,
                   message: str, now: str) -> None:
        """Record a Kubernetes Event about a ModelRoute (what ``kubectl describe`` shows)."""
        meta = ref.get("metadata") or {}
        namespace = str(meta.get("namespace") or "default")
        body = {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": f"{meta.get('name', 'modelroute')}.{uuid.uuid4().hex[:16]}",
                         "namespace": namespace},
            "involvedObject": {"apiVersion": ref.get("apiVersion"), "kind": ref.get("kind"),
                               "name": meta.get("name"), "namespace": namespace,
                               "uid": meta.get("uid")},
            "type": event_type, "reason": reason, "message": message[:1024],
            "source": {"component": "modelgate-operator"},
            "reportingComponent": "modelgate-operator",
            "firstTimestamp": now, "lastTimestamp": now, "count": 1,
        }
        _call(f"post Event for {namespace}/{meta.get('name')}",
              self.core.create_namespaced_event, namespace, body)

    def post_base_config_warning(self, message: str, now: str) -> None:
        """A Warning Event ``BaseConfigRejected`` on the base ConfigMap (when the settings name it)."""
        ref = self.settings.base_config_configmap
        if ref is None:
            return
        namespace, name = ref
        try:  # with its uid, `kubectl describe configmap` finds the Event
            meta = _call(f"read ConfigMap {namespace}/{name}", self.core.read_namespaced_config_map,
                         name, namespace).metadata
            uid = meta.uid if meta is not None else None
        except PublishError:
            uid = None  # not readable (RBAC) or gone: the Event still names it
        obj = {"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": name, "namespace": namespace, "uid": uid}}
        self.post_event(obj, "Warning", "BaseConfigRejected", message, now)

    def patch_route_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> None:
        try:
            _call(f"patch status of ModelRoute {namespace}/{name}",
                  self.custom.patch_namespaced_custom_object_status,
                  GROUP, VERSION, namespace, PLURAL, name, {"status": dict(status)},
                  _content_type=_MERGE)
        except PublishError as exc:
            if not _not_found(exc):  # deleted meanwhile: nothing to report on
                raise
