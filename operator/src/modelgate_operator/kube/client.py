"""The operator's Kubernetes client: every call it makes to the API, reads and writes.

The only module importing ``kubernetes`` (an import contract checks it); it runs the blocking
``kubernetes`` client, so call it from threads (``asyncio.to_thread``, the reconciler's worker),
never from the event loop. Writes use merge patches (create on 404), never PUT. Every API failure
becomes a :class:`~modelgate_operator.errors.KubeApiError` (worth retrying); a 404 is the typed
:class:`~modelgate_operator.errors.KubeNotFound`, which the reads that expect it turn into None
through :func:`unless_missing`.
"""

from __future__ import annotations

import base64
import json
import os
import re
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException
from urllib3.exceptions import HTTPError as TransportError
from urllib3.exceptions import MaxRetryError

from ..errors import KubeApiError, KubeNotFound
from ..rendering.resources import GROUP, PLURAL, VERSION
from ..settings import OperatorSettings
from .objects import PodEndpoint, Stored

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


def _transport_reason(exc: TransportError) -> str:
    """One short line for a failed connection: urllib3 wraps the cause (MaxRetryError.reason) and
    prefixes the connection object's repr, e.g. ``<...HTTPSConnection object at 0x...>: Failed to
    establish a new connection: [Errno 111] Connection refused``."""
    cause: BaseException = exc.reason if isinstance(exc, MaxRetryError) and exc.reason else exc
    text = re.sub(r"^<[^>]*>:\s*", "", str(cause)).strip() or type(cause).__name__
    return text.splitlines()[0][:200]


def call_api(what: str, fn: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
    """Call the API through a method of the ``kubernetes`` client, with a timeout; every failure
    becomes a :class:`KubeApiError` (transient), a 404 the :class:`KubeNotFound` one. Public so
    that every client of the operator (routes here, other resources elsewhere) fails the same way.

    urllib3's errors (MaxRetryError when the API server is unreachable, ProtocolError on a reset
    connection, ReadTimeoutError, SSLError) are not OSErrors: they are transport failures, as
    transient as an HTTP 503, and worth one short line rather than a traceback.
    """
    try:
        return fn(*args, _request_timeout=_REQUEST_TIMEOUT, **kwargs)
    except ApiException as exc:
        error = KubeNotFound if exc.status == 404 else KubeApiError
        raise error(f"{what}: HTTP {exc.status} {exc.reason}") from exc
    except TransportError as exc:
        raise KubeApiError(f"{what}: API server unreachable: {_transport_reason(exc)}") from exc
    except (OSError, ValueError) as exc:
        raise KubeApiError(f"{what}: {exc}") from exc


def unless_missing(what: str, fn: Callable[..., _T], *args: Any, **kwargs: Any) -> _T | None:
    """:func:`call_api`, with None when the object does not exist (HTTP 404)."""
    try:
        return call_api(what, fn, *args, **kwargs)
    except KubeNotFound:
        return None


def _items(response: Any) -> list[dict[str, Any]]:
    """The ``items`` of a raw (not preloaded) list response."""
    try:
        body = json.loads(response.data)
    except ValueError as exc:
        raise KubeApiError(f"list ModelRoutes: unreadable answer: {exc}") from exc
    finally:
        response.release_conn()
    return list(body.get("items") or []) if isinstance(body, dict) else []


class KubeClient:
    """The operator's view of the cluster: routes, Secrets, the gateway's objects and pods."""

    def __init__(self, settings: OperatorSettings, api: client.ApiClient | None = None) -> None:
        self.settings = settings
        api = api or client.ApiClient()
        self.core = client.CoreV1Api(api)
        self.apps = client.AppsV1Api(api)
        self.custom = client.CustomObjectsApi(api)
        # Sidecar mode (modelgate_operator.injection.client): per-namespace RoleBindings and the
        # webhook configuration's caBundle.
        self.rbac = client.RbacAuthorizationV1Api(api)
        self.admission = client.AdmissionregistrationV1Api(api)

    # --- reading ---------------------------------------------------------------------------

    def list_routes(self) -> list[dict[str, Any]]:
        """Every ModelRoute in scope, as plain dicts (all namespaces, or the configured ones).

        Listed with ``resourceVersion=0``: the API server answers from its watch cache instead
        of reading every object from etcd (10,000 routes: 0.5 s instead of 2-20 s on a busy
        server). The cache is never older than the watch event that woke the pass, since events
        are sent from it; a resync may see a change a moment late, and the next pass catches
        up. The body is decoded with one ``json.loads``: the client's own deserialisation
        doubles the time.
        """
        if self.settings.clusterwide:
            return _items(
                call_api(
                    "list ModelRoutes",
                    self.custom.list_cluster_custom_object,
                    GROUP,
                    VERSION,
                    PLURAL,
                    resource_version="0",
                    _preload_content=False,
                )
            )
        items: list[dict[str, Any]] = []
        for namespace in self.settings.namespaces:
            items.extend(
                _items(
                    call_api(
                        f"list ModelRoutes in {namespace}",
                        self.custom.list_namespaced_custom_object,
                        GROUP,
                        VERSION,
                        namespace,
                        PLURAL,
                        resource_version="0",
                        _preload_content=False,
                    )
                )
            )
        return items

    def read_secret(self, namespace: str, name: str) -> dict[str, bytes] | None:
        """A Secret's decoded data, or None when it does not exist."""
        secret = unless_missing(f"read Secret {namespace}/{name}", self.core.read_namespaced_secret, name, namespace)
        if secret is None:
            return None
        return {k: base64.b64decode(v) for k, v in (secret.data or {}).items()}

    def read_object(self, kind: str, name: str) -> Stored | None:
        """A ConfigMap or Secret of the gateway's namespace, or None when it does not exist."""
        read: Callable[..., Any] = (
            self.core.read_namespaced_secret if kind == "Secret" else self.core.read_namespaced_config_map
        )
        ns = self.settings.gateway_namespace
        found: Any = unless_missing(f"read {kind} {ns}/{name}", read, name, ns)
        if found is None:
            return None
        raw = found.data or {}
        data: dict[str, str | bytes] = (
            {k: base64.b64decode(v) for k, v in raw.items()} if kind == "Secret" else dict(raw)
        )
        annotations = (found.metadata.annotations if found.metadata else None) or {}
        return Stored(data=data, annotations=dict(annotations))

    def peering_statuses(self) -> list[dict[str, Any]]:
        """The ``status`` of each kopf peering object this replica peers through.

        All namespaces: the ClusterKopfPeering; otherwise the KopfPeering of each watched
        namespace. Missing objects are left out (kopf does not pause without one either).
        """
        s = self.settings
        statuses = []
        for namespace in [None] if s.clusterwide else list(s.namespaces):
            if namespace is None:
                body = unless_missing(
                    f"read ClusterKopfPeering {s.peering}",
                    self.custom.get_cluster_custom_object,
                    PEERING_GROUP,
                    PEERING_VERSION,
                    "clusterkopfpeerings",
                    s.peering,
                )
            else:
                body = unless_missing(
                    f"read KopfPeering {namespace}/{s.peering}",
                    self.custom.get_namespaced_custom_object,
                    PEERING_GROUP,
                    PEERING_VERSION,
                    namespace,
                    "kopfpeerings",
                    s.peering,
                )
            status = body.get("status") if isinstance(body, dict) else None
            if isinstance(status, dict):
                statuses.append(status)
        return statuses

    def gateway_pods(self) -> list[PodEndpoint]:
        """Running gateway pods with an IP and a container port named ``http``."""
        s = self.settings
        selector = ",".join(f"{k}={v}" for k, v in sorted(s.pod_selector.items()))
        pods = call_api(
            "list gateway pods", self.core.list_namespaced_pod, s.gateway_namespace, label_selector=selector
        )
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
            ports = [p.container_port for c in spec.containers for p in (c.ports or []) if p.name == "http"]
            if ports:
                found.append(PodEndpoint(meta.name, status.pod_ip, ports[0]))
        return sorted(found, key=lambda p: p.name)

    # --- writing ---------------------------------------------------------------------------

    def owner_references(self) -> list[dict[str, Any]]:
        """References to the gateway Deployment, so what the operator writes is garbage-collected
        with it (empty until the Deployment exists)."""
        s = self.settings
        deployment = unless_missing(
            "read gateway Deployment", self.apps.read_namespaced_deployment, s.gateway_deployment, s.gateway_namespace
        )
        # No Deployment yet: objects stay until the gateway appears and owns them.
        uid = deployment.metadata.uid if deployment is not None and deployment.metadata else None
        if not uid:
            return []
        return [
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "name": s.gateway_deployment,
                "uid": uid,
                "controller": False,
                "blockOwnerDeletion": False,
            }
        ]

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
        """Merge-patch a ConfigMap or Secret (create it on 404); keys in ``drop`` are removed."""
        values: dict[str, str | None] = {
            k: base64.b64encode(v if isinstance(v, bytes) else v.encode()).decode()
            if kind == "Secret"
            else (v.decode() if isinstance(v, bytes) else v)
            for k, v in data.items()
        }
        values.update({k: None for k in drop if k not in data})
        meta = {"labels": {**MANAGED_BY, **labels}, "annotations": dict(annotations), "ownerReferences": owners}
        body: dict[str, Any] = {"metadata": meta, "data": values}
        if kind == "Secret":
            body["type"] = "Opaque"
        ns = self.settings.gateway_namespace
        create, patch = (
            (self.core.create_namespaced_secret, self.core.patch_namespaced_secret)
            if kind == "Secret"
            else (self.core.create_namespaced_config_map, self.core.patch_namespaced_config_map)
        )
        try:
            call_api(f"patch {kind} {ns}/{name}", patch, name, ns, body, _content_type=_MERGE)
            return
        except KubeNotFound:
            pass  # not there yet: create it
        full = {
            **body,
            "apiVersion": "v1",
            "kind": kind,
            "metadata": {**meta, "name": name, "namespace": ns},
            "data": {k: v for k, v in values.items() if v is not None},
        }
        call_api(f"create {kind} {ns}/{name}", create, ns, full)

    def delete_object(self, kind: str, name: str) -> None:
        """Delete a ConfigMap or Secret of the gateway's namespace (already gone is fine)."""
        delete = self.core.delete_namespaced_secret if kind == "Secret" else self.core.delete_namespaced_config_map
        ns = self.settings.gateway_namespace
        unless_missing(f"delete {kind} {ns}/{name}", delete, name, ns)

    def post_event(self, ref: Mapping[str, Any], event_type: str, reason: str, message: str, now: str) -> None:
        """Record a Kubernetes Event about a ModelRoute (what ``kubectl describe`` shows)."""
        meta = ref.get("metadata") or {}
        namespace = str(meta.get("namespace") or "default")
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": f"{meta.get('name', 'modelroute')}.{uuid.uuid4().hex[:16]}", "namespace": namespace},
            "involvedObject": {
                "apiVersion": ref.get("apiVersion"),
                "kind": ref.get("kind"),
                "name": meta.get("name"),
                "namespace": namespace,
                "uid": meta.get("uid"),
            },
            "type": event_type,
            "reason": reason,
            "message": message[:1024],
            "source": {"component": "modelgate-operator"},
            "reportingComponent": "modelgate-operator",
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        call_api(f"post Event for {namespace}/{meta.get('name')}", self.core.create_namespaced_event, namespace, body)

    def post_base_config_warning(self, message: str, now: str) -> None:
        """A Warning Event ``BaseConfigRejected`` on the base ConfigMap (when the settings name it)."""
        ref = self.settings.base_config_configmap
        if ref is None:
            return
        namespace, name = ref
        try:  # with its uid, `kubectl describe configmap` finds the Event
            meta = call_api(
                f"read ConfigMap {namespace}/{name}", self.core.read_namespaced_config_map, name, namespace
            ).metadata
            uid = meta.uid if meta is not None else None
        except KubeApiError:
            uid = None  # not readable (RBAC) or gone: the Event still names it
        obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": namespace, "uid": uid}}
        self.post_event(obj, "Warning", "BaseConfigRejected", message, now)

    def patch_route_status(self, namespace: str, name: str, status: Mapping[str, Any]) -> None:
        # Deleted meanwhile (404): nothing to report on.
        unless_missing(
            f"patch status of ModelRoute {namespace}/{name}",
            self.custom.patch_namespaced_custom_object_status,
            GROUP,
            VERSION,
            namespace,
            PLURAL,
            name,
            {"status": dict(status)},
            _content_type=_MERGE,
        )
