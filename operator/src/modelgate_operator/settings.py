"""Operator settings, parsed once from the environment (names fixed in docs/architecture.md).

A frozen dataclass with the unit and the reason for each default on the field. Only
:func:`OperatorSettings.from_env` reads the environment; nothing here runs at import time.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field


class SettingsError(ValueError):
    """An environment variable holds a value the operator cannot use."""


def _float(env: Mapping[str, str], name: str, default: float, minimum: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name}: {raw!r} is not a number") from None
    if value < minimum:
        raise SettingsError(f"{name}: must be >= {minimum}")
    return value


def _port(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or int(raw) > 65535:
        raise SettingsError(f"{name}: {raw!r} is not a port number (0-65535)")
    return int(raw)


def _object_ref(env: Mapping[str, str], name: str, namespace: str) -> tuple[str, str] | None:
    raw = env.get(name, "").strip()
    if not raw:
        return None
    ns, sep, obj = raw.rpartition("/")
    if "/" in ns or not obj or (sep and not ns):
        raise SettingsError(f"{name}: {raw!r} is not 'namespace/name' or 'name'")
    return (ns or namespace, obj)


def _selector(raw: str) -> dict[str, str]:
    labels: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in raw.split(","))):
        key, sep, value = part.partition("=")
        if not sep or not key:
            raise SettingsError(f"MODELGATE_OPERATOR_GATEWAY_POD_SELECTOR: {part!r} is not key=value")
        labels[key.strip()] = value.strip()
    return labels


@dataclass(frozen=True, slots=True)
class OperatorSettings:
    gateway_name: str = "modelgate"
    """Gateway this operator renders for; routes attach by spec.gatewayRef.name."""
    gateway_namespace: str = "default"
    """Namespace of the gateway's ConfigMap, Secret, Deployment and pods."""
    configmap: str = "modelgate-gateway-config"
    """ConfigMap receiving the rendered document under key ``config.json``."""
    secret: str = "modelgate-gateway-upstream-keys"  # noqa: S105 (an object name)
    """Secret receiving the upstream API keys copied from the routes' Secrets."""
    gateway_deployment: str = "modelgate-gateway"
    """Owner of the ConfigMap and Secret, so they are garbage-collected with the gateway."""
    pod_selector: Mapping[str, str] = field(default_factory=lambda: {"app.kubernetes.io/component": "gateway"})
    """Labels of the gateway pods whose /readyz the rollout status counts."""
    base_config: str | None = None
    """Path of a base document (auth, limits, ...); models and deployments are added to it."""
    base_config_configmap: tuple[str, str] | None = None
    """(namespace, name) of the ConfigMap the base document is mounted from: a refused version
    becomes a Warning Event on it (``kubectl describe configmap``), not only a log line."""
    namespaces: tuple[str, ...] = ()
    """Namespaces whose ModelRoutes are watched; empty means all namespaces."""
    service_namespaces: frozenset[str] | None = None
    """Namespaces where the gateway may read EndpointSlices (``serviceRef`` routes); None: every one
    (unset, or ``*``). The chart sets it from ``gateway.rbac.endpointSliceNamespaces``."""
    peering: str = "modelgate"
    """kopf peering object name: replicas sharing it never act at the same time."""
    priority: int = 0
    """kopf peering priority. Replicas need distinct ones (equal priorities pause everybody),
    so the default is drawn at random per process: the highest live replica acts."""
    debounce_seconds: float = 0.5
    """Quiet time after a change before rendering: a burst of applies becomes one write."""
    debounce_max_seconds: float = 2.0
    """Upper bound on the debounce, so a steady trickle of changes still gets published."""
    rollout_poll_seconds: float = 1.0
    """Period of /readyz polling while a new config is rolling out."""
    rollout_deadline_seconds: float = 120.0
    """How long to keep polling after a publish before waiting for the next change."""
    resync_seconds: float = 30.0
    """Period of a full pass without any trigger: picks up new or restarted gateway pods for the
    rollout count without watching pods (which would need cluster-wide pod read access)."""
    readyz_timeout_seconds: float = 2.0
    """Timeout of one /readyz request; a slow pod counts as not serving."""
    max_shards: int = 32
    """Most ConfigMap shards (``<configmap>-0`` …) and upstream-keys Secrets (``<secret>``,
    ``<secret>-1`` …) the config may be spread over; a power of two (others round down). The
    chart names exactly these objects in the operator's and the gateway's RBAC and in the
    gateway's mounts (``operator.maxConfigShards``). 32 shards of up to 1,000,000 bytes hold
    tens of thousands of routes."""
    retry_seconds: float = 5.0
    """Delay before retrying a failed pass (API error, API server unreachable); it doubles per
    consecutive failure up to ``retry_max_seconds``, and the first success resets it."""
    retry_max_seconds: float = 60.0
    """Cap of that delay: an outage of minutes costs one attempt (and one warning) a minute."""
    liveness_host: str = "0.0.0.0"  # noqa: S104 (the kubelet probes the pod IP)
    """Listen address of kopf's liveness endpoint (``/healthz``); ``::`` for IPv6-only pods."""
    liveness_port: int = 8080
    """Its port (the chart's probe targets it by the container port name); 0 turns it off, e.g.
    for a second operator on one host."""

    @property
    def liveness_endpoint(self) -> str | None:
        """kopf's ``liveness_endpoint`` URL, or None when turned off."""
        if not self.liveness_port:
            return None
        host = f"[{self.liveness_host}]" if ":" in self.liveness_host else self.liveness_host
        return f"http://{host}:{self.liveness_port}/healthz"

    @property
    def clusterwide(self) -> bool:
        return not self.namespaces

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> OperatorSettings:
        """Settings from environment variables; raises :class:`SettingsError` on bad values."""
        gateway = env.get("MODELGATE_OPERATOR_GATEWAY_NAME", "").strip() or "modelgate"
        namespace = (
            env.get("MODELGATE_OPERATOR_GATEWAY_NAMESPACE", "").strip()
            or env.get("POD_NAMESPACE", "").strip()
            or "default"
        )
        namespaces = tuple(
            sorted({n.strip() for n in env.get("MODELGATE_OPERATOR_NAMESPACES", "").split(",") if n.strip()})
        )
        priority_raw = env.get("MODELGATE_OPERATOR_PEERING_PRIORITY", "").strip()
        try:
            priority = int(priority_raw) if priority_raw else random.randint(1, 2**31 - 1)
        except ValueError:
            raise SettingsError(f"MODELGATE_OPERATOR_PEERING_PRIORITY: {priority_raw!r} is not an integer") from None
        debounce = _float(env, "MODELGATE_OPERATOR_DEBOUNCE_SECONDS", 0.5, 0.0)
        shards_raw = env.get("MODELGATE_OPERATOR_MAX_SHARDS", "").strip() or "32"
        if not shards_raw.isdigit() or not 1 <= int(shards_raw) <= 1024:
            raise SettingsError(f"MODELGATE_OPERATOR_MAX_SHARDS: {shards_raw!r} is not a number from 1 to 1024")
        retry = _float(env, "MODELGATE_OPERATOR_RETRY_SECONDS", 5.0, 0.1)
        return cls(
            gateway_name=gateway,
            gateway_namespace=namespace,
            configmap=(env.get("MODELGATE_OPERATOR_CONFIGMAP", "").strip() or f"{gateway}-gateway-config"),
            secret=(env.get("MODELGATE_OPERATOR_SECRET", "").strip() or f"{gateway}-gateway-upstream-keys"),
            gateway_deployment=(env.get("MODELGATE_OPERATOR_GATEWAY_DEPLOYMENT", "").strip() or f"{gateway}-gateway"),
            pod_selector=_selector(
                env.get("MODELGATE_OPERATOR_GATEWAY_POD_SELECTOR", "app.kubernetes.io/component=gateway")
            ),
            base_config=env.get("MODELGATE_OPERATOR_BASE_CONFIG", "").strip() or None,
            base_config_configmap=_object_ref(env, "MODELGATE_OPERATOR_BASE_CONFIG_CONFIGMAP", namespace),
            namespaces=namespaces,
            service_namespaces=_service_namespaces(env.get("MODELGATE_OPERATOR_ENDPOINTSLICE_NAMESPACES")),
            peering=env.get("MODELGATE_OPERATOR_PEERING", "").strip() or "modelgate",
            priority=priority,
            debounce_seconds=debounce,
            debounce_max_seconds=max(debounce, 2.0),
            resync_seconds=_float(env, "MODELGATE_OPERATOR_RESYNC_SECONDS", 30.0, 1.0),
            max_shards=int(shards_raw),
            retry_seconds=retry,
            liveness_host=env.get("MODELGATE_OPERATOR_LIVENESS_HOST", "").strip() or "0.0.0.0",  # noqa: S104
            liveness_port=_port(env, "MODELGATE_OPERATOR_LIVENESS_PORT", 8080),
            retry_max_seconds=max(retry, _float(env, "MODELGATE_OPERATOR_RETRY_MAX_SECONDS", 60.0, 0.1)),
        )


def _service_namespaces(raw: str | None) -> frozenset[str] | None:
    """None (unset, or ``*`` among them): every namespace; else the listed ones (empty: none)."""
    if raw is None:
        return None
    names = {n.strip() for n in raw.split(",") if n.strip()}
    return None if "*" in names else frozenset(names)
