"""ModelRoute objects as typed, immutable values parsed from raw Kubernetes bodies.

Pure: no I/O, no kopf, no kubernetes. The CRD's schema already rejects most bad input at
admission; this parser is the second line (objects created before a CRD upgrade, or a cluster
without CEL) and turns anything unusable into :class:`~.errors.InvalidRoute`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import InvalidRoute

GROUP = "modelgate.dev"
VERSION = "v1alpha1"
PLURAL = "modelroutes"
KIND = "ModelRoute"

RouteKey = tuple[str, str]
"""(namespace, name) of a ModelRoute."""


@dataclass(frozen=True, slots=True)
class SecretKeyRef:
    """A key of a Secret in the route's own namespace (tenancy: never another namespace)."""

    name: str
    key: str


@dataclass(frozen=True, slots=True)
class RouteDeployment:
    """One upstream of a route. ``extra`` holds the fields copied 1:1 into the config document."""

    name: str
    upstream_model: str
    weight: float
    api_key: SecretKeyRef | None
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Sidecars:
    """``spec.sidecars``: which injected sidecars serve the route (sidecar mode)."""

    attach: bool = False
    """The sidecars in the route's own namespace serve it."""
    share_with: tuple[str, ...] = ()
    """Other namespaces whose sidecars serve it (honoured for sharing namespaces only)."""
    shared_gateway: bool = True
    """The shared gateway Deployment serves it too."""


@dataclass(frozen=True, slots=True)
class ModelRoute:
    """A parsed ModelRoute. ``error`` is set when the spec is unusable (route left out)."""

    namespace: str
    name: str
    generation: int
    uid: str
    creation_timestamp: str
    gateway: str
    model: str
    deployments: tuple[RouteDeployment, ...] = ()
    fallbacks: tuple[str, ...] = ()
    policy: Mapping[str, Any] = field(default_factory=dict)
    """``strategy``, ``retry``, ``cooldown``, ``pricing``: copied 1:1 into the model entry."""
    error: InvalidRoute | None = None
    deployment_names: tuple[str, ...] = ()
    """Names in ``spec.deployments``, in spec order, read leniently (also for an invalid spec):
    ``status.deploymentNames`` shows them in ``kubectl get mr``."""
    sidecars: Sidecars = field(default_factory=Sidecars)

    @property
    def key(self) -> RouteKey:
        return (self.namespace, self.name)

    @property
    def age_key(self) -> tuple[str, str, str]:
        """Older first: creationTimestamp (RFC 3339 sorts as text), then namespace/name."""
        return (self.creation_timestamp, self.namespace, self.name)


# Fields of a route deployment copied unchanged into the config's deployment entry.
_DEPLOYMENT_PASSTHROUGH = (
    "provider",
    "api",
    "baseUrl",
    "loadMetrics",
    "timeouts",
    "maxConcurrentRequests",
    "queryParams",
    "headers",
    "pricing",
    "mock",
    "organization",
    "translation",
    "websocket",
)
_POLICY_FIELDS = ("strategy", "retry", "cooldown", "pricing", "adaptiveWeights")


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidRoute(where, "expected an object")
    return value


def _string(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidRoute(where, "expected a non-empty string")
    return value


def _parse_deployment(raw: Any, index: int) -> RouteDeployment:
    where = f"spec.deployments[{index}]"
    data = _mapping(raw, where)
    ref_raw = data.get("apiKeySecretRef")
    api_key = None
    if ref_raw is not None:
        ref = _mapping(ref_raw, f"{where}.apiKeySecretRef")
        api_key = SecretKeyRef(
            name=_string(ref.get("name"), f"{where}.apiKeySecretRef.name"),
            key=_string(ref.get("key"), f"{where}.apiKeySecretRef.key"),
        )
    service = data.get("serviceRef")
    if data.get("provider", "openai-compatible") != "mock" and not data.get("baseUrl") and service is None:
        raise InvalidRoute(f"{where}.baseUrl", "required unless provider is mock (or serviceRef)")
    extra = {k: data[k] for k in _DEPLOYMENT_PASSTHROUGH if data.get(k) is not None}
    if service is not None:  # a Service of the route's own namespace: rendered with the namespace
        extra["serviceRef"] = dict(_mapping(service, f"{where}.serviceRef"))
    weight = data.get("weight", 1)
    if isinstance(weight, bool) or not isinstance(weight, int | float) or weight < 0:
        raise InvalidRoute(f"{where}.weight", "expected a number >= 0")
    return RouteDeployment(
        name=_string(data.get("name"), f"{where}.name"),
        upstream_model=_string(data.get("upstreamModel"), f"{where}.upstreamModel"),
        weight=float(weight),
        api_key=api_key,
        extra=extra,
    )


def _parse_sidecars(raw: Any) -> Sidecars:
    data = _mapping(raw, "spec.sidecars")
    flags = {}
    for key in ("attach", "sharedGateway"):
        if key in data and not isinstance(data[key], bool):
            raise InvalidRoute(f"spec.sidecars.{key}", "expected true or false")
        flags[key] = data.get(key)
    share_raw = data.get("shareWith") or []
    if not isinstance(share_raw, list):
        raise InvalidRoute("spec.sidecars.shareWith", "expected a list of namespaces")
    share = tuple(sorted({_string(n, f"spec.sidecars.shareWith[{i}]") for i, n in enumerate(share_raw)}))
    sidecars = Sidecars(
        attach=flags["attach"] is True, share_with=share, shared_gateway=flags["sharedGateway"] is not False
    )
    if not (sidecars.shared_gateway or sidecars.attach or sidecars.share_with):
        raise InvalidRoute(
            "spec.sidecars", "a route served neither by the shared gateway nor by any sidecar serves nothing"
        )
    return sidecars


def _parse_spec(spec: Mapping[str, Any]) -> dict[str, Any]:
    deployments_raw = spec.get("deployments")
    if not isinstance(deployments_raw, list) or not deployments_raw:
        raise InvalidRoute("spec.deployments", "at least one deployment is required")
    deployments = tuple(_parse_deployment(d, i) for i, d in enumerate(deployments_raw))
    names = [d.name for d in deployments]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise InvalidRoute("spec.deployments", f"duplicate deployment names {duplicates}")
    if not any(d.weight > 0 for d in deployments):
        raise InvalidRoute("spec.deployments", "at least one deployment needs a weight above 0")
    fallbacks_raw = spec.get("fallbacks") or []
    if not isinstance(fallbacks_raw, list):
        raise InvalidRoute("spec.fallbacks", "expected a list of model names")
    fallbacks = tuple(_string(f, f"spec.fallbacks[{i}]") for i, f in enumerate(fallbacks_raw))
    model = _string(spec.get("model"), "spec.model")
    if model in fallbacks:
        raise InvalidRoute("spec.fallbacks", "a model cannot fall back to itself")
    policy = {k: spec[k] for k in _POLICY_FIELDS if spec.get(k) is not None}
    return {
        "model": model,
        "deployments": deployments,
        "fallbacks": fallbacks,
        "policy": policy,
        "sidecars": _parse_sidecars(spec.get("sidecars")),
    }


def _deployment_names(spec: Any) -> tuple[str, ...]:
    raw = spec.get("deployments") if isinstance(spec, Mapping) else None
    if not isinstance(raw, list):
        return ()
    return tuple(d["name"] for d in raw if isinstance(d, Mapping) and isinstance(d.get("name"), str))


def parse_route(body: Mapping[str, Any], default_gateway: str) -> ModelRoute:
    """Parse a ModelRoute body; never raises: an unusable spec comes back with ``error`` set."""
    meta = _mapping(body.get("metadata"), "metadata")
    spec = body.get("spec")
    gateway_ref = spec.get("gatewayRef") if isinstance(spec, Mapping) else None
    gateway = default_gateway
    if isinstance(gateway_ref, Mapping) and isinstance(gateway_ref.get("name"), str):
        gateway = gateway_ref["name"]
    generation = meta.get("generation")
    common: dict[str, Any] = {
        "namespace": str(meta.get("namespace") or ""),
        "name": str(meta.get("name") or ""),
        "generation": generation if isinstance(generation, int) else 0,
        "uid": str(meta.get("uid") or ""),
        "creation_timestamp": str(meta.get("creationTimestamp") or ""),
        "gateway": gateway,
        "deployment_names": _deployment_names(spec),
    }
    raw_model = spec.get("model") if isinstance(spec, Mapping) else None
    try:
        parsed = _parse_spec(_mapping(spec, "spec"))
    except InvalidRoute as exc:
        model = raw_model if isinstance(raw_model, str) else ""
        return ModelRoute(**common, model=model, error=exc)
    return ModelRoute(**common, **parsed)
