"""ModelGateKey objects as typed, immutable values parsed from raw Kubernetes bodies. Pure.

The CRD's schema rejects most bad input at admission; this parser is the second line (objects
from before a CRD upgrade, clusters without CEL) and records anything unusable as ``error``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

GROUP = "modelgate.dev"
VERSION = "v1alpha1"
PLURAL = "modelgatekeys"
KIND = "ModelGateKey"

KeyRef = tuple[str, str]
"""(namespace, name) of a ModelGateKey."""

_MODEL = re.compile(r"^[^*]{0,255}[*]?$")
_TENANT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
_LIMITS = ("requestsPerMinute", "tokensPerMinute", "maxConcurrentRequests", "budget")
_SECRET_KEY = re.compile(r"^[-._a-zA-Z0-9]{1,253}$")


@dataclass(frozen=True, slots=True)
class GateKey:
    namespace: str
    name: str
    generation: int
    uid: str
    creation_timestamp: str
    gateway: str
    secret_name: str = ""
    secret_key: str = "api-key"  # noqa: S105 (the name of a key in the Secret)
    generate: bool = False
    models: tuple[str, ...] = ("*",)
    tenant: str = ""
    """The gateway's tenant: ``<namespace>`` or ``<namespace>/<spec.tenant>``."""
    expires_at: str | None = None
    limits: Mapping[str, Any] = field(default_factory=dict)
    error: str | None = None
    """Why the spec is unusable (the key is left out), else None."""

    @property
    def ref(self) -> KeyRef:
        return (self.namespace, self.name)

    @property
    def key_name(self) -> str:
        """The key's name in the gateway's config, metrics and logs."""
        return f"{self.namespace}/{self.name}"

    @property
    def age_key(self) -> tuple[str, str, str]:
        """Older keys win conflicts: creation time, then namespace/name."""
        return (self.creation_timestamp, self.namespace, self.name)


def _spec_error(spec: Mapping[str, Any]) -> str | None:
    ref = spec.get("secretRef")
    if not isinstance(ref, Mapping) or not isinstance(ref.get("name"), str) or not ref["name"]:
        return "spec.secretRef.name: required"
    if not _SECRET_KEY.match(str(ref.get("key", "api-key"))):
        return "spec.secretRef.key: not a valid Secret key"
    models = spec.get("models", ["*"])
    if not isinstance(models, list) or not models or not all(isinstance(m, str) and m and _MODEL.match(m)
                                                             for m in models):
        return "spec.models: a list of model names, prefixes ending in '*', or '*'"
    tenant = spec.get("tenant")
    if tenant is not None and not (isinstance(tenant, str) and _TENANT.match(tenant)):
        return "spec.tenant: letters, digits, '.', '_' and '-', at most 63"
    expires = spec.get("expiresAt")
    if expires is not None:
        try:
            datetime.fromisoformat(str(expires).replace("Z", "+00:00"))
        except ValueError:
            return "spec.expiresAt: not an RFC 3339 time"
    limits = spec.get("limits")
    if limits is not None and not isinstance(limits, Mapping):
        return "spec.limits: must be an object"
    if limits is not None and not any(k in limits for k in _LIMITS):
        return "spec.limits: limits must set at least one limit"
    return None


def _expiry(value: Any) -> str | None:
    if value is None:
        return None
    moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_key(body: Mapping[str, Any], default_gateway: str) -> GateKey:
    meta = body.get("metadata") or {}
    spec = body.get("spec")
    spec = spec if isinstance(spec, Mapping) else {}
    gateway_ref = spec.get("gatewayRef")
    gateway = default_gateway
    if isinstance(gateway_ref, Mapping) and isinstance(gateway_ref.get("name"), str):
        gateway = gateway_ref["name"]
    namespace = str(meta.get("namespace") or "")
    base: dict[str, Any] = {
        "namespace": namespace, "name": str(meta.get("name") or ""),
        "generation": int(meta.get("generation") or 0), "uid": str(meta.get("uid") or ""),
        "creation_timestamp": str(meta.get("creationTimestamp") or ""), "gateway": gateway,
        "tenant": namespace,
    }
    error = _spec_error(spec)
    if error is not None:
        return GateKey(**base, error=error)
    ref = spec["secretRef"]
    tenant = spec.get("tenant")
    return GateKey(
        **{**base, "tenant": f"{namespace}/{tenant}" if tenant else namespace},
        secret_name=ref["name"], secret_key=str(ref.get("key", "api-key")),
        generate=spec.get("generateSecret") is True, models=tuple(spec.get("models", ["*"])),
        expires_at=_expiry(spec.get("expiresAt")), limits=dict(spec.get("limits") or {}),
    )
