"""The injection decision for one pod, as a pure function from the pod to a JSON patch.

Pods ask with the annotation ``modelgate.dev/inject: "true"``, or live in a namespace labelled
``modelgate.dev/inject=enabled`` (the annotation ``"false"`` then opts out). An injected pod gets
the gateway as a native sidecar (an init container with ``restartPolicy: Always``: started before
the app, stopped after it) listening on 127.0.0.1, and ``OPENAI_BASE_URL`` in every app container
that does not set it. Idempotent: a pod that already carries the sidecar is left unchanged.
No I/O: :mod:`.review` wraps the result into an ``AdmissionReview`` answer.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from .template import SidecarTemplate

INJECT = "modelgate.dev/inject"
"""Pod annotation ("true" / "false") and namespace label ("enabled")."""
NAMESPACE_ENABLED = "enabled"
PORT_ANNOTATION = "modelgate.dev/port"
ADMIN_PORT_ANNOTATION = "modelgate.dev/admin-port"
SIDECAR_LABEL = "modelgate.dev/sidecar"
"""Label of injected pods (value: the gateway name); the operator and the PodMonitor select by it."""
CONTAINER = "modelgate"
ADMIN_PORT_NAME = "modelgate-admin"
TMP_VOLUME = "modelgate-tmp"
TOKEN_VOLUME = "modelgate-kube-api"  # noqa: S105 (a volume name)
BASE_URL_ENV = "OPENAI_BASE_URL"
SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
# Projected service-account tokens are valid for an hour; the kubelet renews them at 80 %.
_TOKEN_SECONDS = 3607
_PROMETHEUS = ("prometheus.io/scrape", "prometheus.io/port", "prometheus.io/path")


class Action(StrEnum):
    INJECT = "inject"
    SKIP = "skip"
    DENY = "deny"


@dataclass(frozen=True, slots=True)
class Decision:
    """What the webhook answers: a patch (INJECT), no change (SKIP) or a refusal (DENY)."""

    action: Action
    reason: str
    patch: tuple[Mapping[str, Any], ...] = ()


def _pointer(*parts: str | int) -> str:
    """A JSON pointer (RFC 6901): '~' and '/' inside a key are escaped."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def _port(annotations: Mapping[str, Any], name: str, default: int) -> int:
    raw = annotations.get(name)
    if raw is None:
        return default
    text = str(raw).strip()
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise ValueError(f"annotation {name}: {raw!r} is not a port number (1-65535)")
    return int(text)


def _opted_in(annotations: Mapping[str, Any], namespace_enabled: bool) -> bool | None:
    """True / False, or None for a value that is neither (the pod is refused, not guessed at)."""
    raw = annotations.get(INJECT)
    if raw is None:
        return namespace_enabled
    value = str(raw).strip().lower()
    if value in {"true", "false"}:
        return value == "true"
    return None


def _declared_ports(spec: Mapping[str, Any]) -> dict[int, str]:
    ports: dict[int, str] = {}
    for kind in ("initContainers", "containers"):
        for container in spec.get(kind) or []:
            for port in container.get("ports") or []:
                if (port.get("protocol") or "TCP") == "TCP" and isinstance(port.get("containerPort"), int):
                    ports.setdefault(port["containerPort"], str(container.get("name")))
    return ports


def _conflicts(spec: Mapping[str, Any], port: int, admin_port: int) -> str | None:
    """Why the sidecar cannot live in this pod, or None."""
    if spec.get("hostNetwork"):
        return (
            "the pod uses hostNetwork: a sidecar on 127.0.0.1 would share the node's loopback with every other such pod"
        )
    if any(c.get("name") == CONTAINER for c in spec.get("containers") or []):
        return f"the pod already has an app container named {CONTAINER!r}"
    if port == admin_port:
        return f"annotations {PORT_ANNOTATION} and {ADMIN_PORT_ANNOTATION} name the same port {port}"
    declared = _declared_ports(spec)
    for wanted, annotation in ((port, PORT_ANNOTATION), (admin_port, ADMIN_PORT_ANNOTATION)):
        if wanted in declared:
            return (
                f"port {wanted} is already used by container {declared[wanted]!r}; "
                f"choose another with the annotation {annotation}"
            )
    volumes = {v.get("name") for v in spec.get("volumes") or []}
    taken = sorted(volumes & {TMP_VOLUME, TOKEN_VOLUME})
    if taken:
        return f"the pod already has a volume named {taken[0]!r}"
    return None


def decide(pod: Mapping[str, Any], namespace: str, namespace_enabled: bool, template: SidecarTemplate) -> Decision:
    """Inject, skip or deny one pod about to be created in ``namespace``.

    ``namespace_enabled``: the namespace carries the label ``modelgate.dev/inject=enabled`` (the
    webhook configuration routes such pods to their own path, so no namespace read is needed).
    """
    if namespace in template.excluded_namespaces:
        return Decision(Action.SKIP, f"namespace {namespace} is never injected")
    meta = pod.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    wanted = _opted_in(annotations, namespace_enabled)
    if wanted is None:
        return Decision(Action.DENY, f'annotation {INJECT} must be "true" or "false", not {annotations.get(INJECT)!r}')
    if not wanted:
        return Decision(Action.SKIP, "not requested" if INJECT not in annotations else "opted out")
    spec = pod.get("spec") or {}
    if any(c.get("name") == CONTAINER for c in spec.get("initContainers") or []):
        return Decision(Action.SKIP, "already injected")
    try:
        port = _port(annotations, PORT_ANNOTATION, template.port)
        admin_port = _port(annotations, ADMIN_PORT_ANNOTATION, template.admin_port)
    except ValueError as exc:
        return Decision(Action.DENY, str(exc))
    conflict = _conflicts(spec, port, admin_port)
    if conflict is not None:
        return Decision(Action.DENY, f"cannot inject the ModelGate sidecar: {conflict}")
    patch = [*_metadata_ops(meta, template, admin_port), *_spec_ops(spec, template, port, admin_port)]
    return Decision(Action.INJECT, f"sidecar on 127.0.0.1:{port}", tuple(patch))


def _add_entries(meta: Mapping[str, Any], field: str, entries: Mapping[str, str]) -> Iterable[dict[str, Any]]:
    if not entries:
        return []
    if not meta.get(field):
        return [{"op": "add", "path": _pointer("metadata", field), "value": dict(entries)}]
    return [{"op": "add", "path": _pointer("metadata", field, k), "value": v} for k, v in entries.items()]


def _metadata_ops(meta: Mapping[str, Any], template: SidecarTemplate, admin_port: int) -> list[dict[str, Any]]:
    annotations = meta.get("annotations") or {}
    scrape: dict[str, str] = {}
    # The app may already describe its own metrics endpoint: never mix ours into it.
    if not any(k in annotations for k in _PROMETHEUS):
        scrape = {
            "prometheus.io/scrape": "true",
            "prometheus.io/port": str(admin_port),
            "prometheus.io/path": "/metrics",
        }
    return [
        *_add_entries(meta, "labels", {SIDECAR_LABEL: template.gateway}),
        *_add_entries(meta, "annotations", scrape),
    ]


def _append(
    spec: Mapping[str, Any], field: str, items: Sequence[Mapping[str, Any]], *prefix: str | int, first: bool = False
) -> list[dict[str, Any]]:
    """Add ``items`` to the list ``spec[field]`` (creating it when absent), at its start or end."""
    if not spec.get(field):
        return [{"op": "add", "path": _pointer(*prefix, field), "value": [dict(i) for i in items]}]
    at: str | int = 0 if first else "-"
    ops = [{"op": "add", "path": _pointer(*prefix, field, at), "value": dict(i)} for i in items]
    return list(reversed(ops)) if first else ops


def _spec_ops(spec: Mapping[str, Any], template: SidecarTemplate, port: int, admin_port: int) -> list[dict[str, Any]]:
    # First among the init containers: the ones already there may call the gateway too.
    ops = _append(spec, "initContainers", [sidecar_container(template, port, admin_port)], "spec", first=True)
    ops += _append(spec, "volumes", sidecar_volumes(), "spec")
    base_url = {"name": BASE_URL_ENV, "value": f"http://127.0.0.1:{port}/v1"}
    for index, container in enumerate(spec.get("containers") or []):
        if any(e.get("name") == BASE_URL_ENV for e in container.get("env") or []):
            continue  # the app chose its own endpoint
        ops += _append(container, "env", [base_url], "spec", "containers", index)
    return ops


def _probe(path: str, period: int, timeout: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": ADMIN_PORT_NAME},
        "periodSeconds": period,
        "timeoutSeconds": timeout,
        "failureThreshold": failures,
    }


def sidecar_container(template: SidecarTemplate, port: int, admin_port: int) -> dict[str, Any]:
    """The init container the gateway runs in; its args are what the e2e test starts."""
    return {
        "name": CONTAINER,
        "image": template.image,
        "imagePullPolicy": template.image_pull_policy,
        "restartPolicy": "Always",
        "args": [
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            # Metrics and probes on the pod IP: the kubelet and Prometheus cannot reach loopback.
            "--metrics-host",
            "0.0.0.0",  # noqa: S104
            "--metrics-port",
            str(admin_port),
            "--kube-configmap",
            f"$(POD_NAMESPACE)/{template.configmap}",
            "--kube-secret",
            f"$(POD_NAMESPACE)/{template.secret}",
            "--shutdown-grace-seconds",
            str(template.shutdown_grace_seconds),
            "--log-level",
            template.log_level,
        ],
        "env": [
            {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        ],
        "ports": [{"name": ADMIN_PORT_NAME, "containerPort": admin_port, "protocol": "TCP"}],
        # The app starts once the gateway serves its namespace's config (native sidecars hold
        # the next container until their startup probe succeeds).
        "startupProbe": _probe("/readyz", 1, 1, template.startup_seconds),
        "readinessProbe": _probe("/readyz", 5, 2, 2),
        "livenessProbe": _probe("/healthz", 10, 3, 3),
        "resources": dict(template.resources),
        "securityContext": dict(template.security_context),
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "volumeMounts": [
            {"name": TMP_VOLUME, "mountPath": "/tmp"},  # noqa: S108 (its own emptyDir)
            {"name": TOKEN_VOLUME, "mountPath": SERVICE_ACCOUNT_DIR, "readOnly": True},
        ],
    }


def sidecar_volumes() -> list[dict[str, Any]]:
    """The sidecar's own token (app containers keep whatever the pod's automount decided)."""
    return [
        {"name": TMP_VOLUME, "emptyDir": {"sizeLimit": "64Mi"}},
        {
            "name": TOKEN_VOLUME,
            "projected": {
                "defaultMode": 0o444,
                "sources": [
                    {"serviceAccountToken": {"path": "token", "expirationSeconds": _TOKEN_SECONDS}},
                    {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                    {
                        "downwardAPI": {
                            "items": [
                                {
                                    "path": "namespace",
                                    "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"},
                                }
                            ]
                        }
                    },
                ],
            },
        },
    ]
