"""What every injected sidecar looks like, read once from the file the chart writes.

The chart renders the sidecar's image, ports, resources and security context into a JSON document
(``MODELGATE_OPERATOR_SIDECAR_TEMPLATE``); :mod:`.mutation` turns it into a container. Pure: only
:func:`load_template` touches the filesystem.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import OperatorError

DEFAULT_PORT = 4000
# Not 9090 (the shared gateway's metrics port, and many apps' own Prometheus port): the sidecar
# shares the pod's network namespace with the app, so its admin port must be unlikely to collide.
DEFAULT_ADMIN_PORT = 14090
_PULL_POLICIES = frozenset({"Always", "IfNotPresent", "Never"})
_LOG_LEVELS = frozenset({"debug", "info", "warning", "error"})


class TemplateError(OperatorError):
    """The sidecar template file is missing or holds a value the operator cannot use."""


def _default_security_context() -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "runAsUser": 10001,
        "runAsGroup": 10001,
        "privileged": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _default_resources() -> dict[str, Any]:
    return {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"cpu": "1", "memory": "256Mi"}}


@dataclass(frozen=True, slots=True)
class SidecarTemplate:
    image: str
    """Gateway image of the sidecar container (the same image as the shared gateway)."""
    image_pull_policy: str = "IfNotPresent"
    gateway: str = "modelgate"
    """Gateway name; the value of the ``modelgate.dev/sidecar`` label on injected pods."""
    configmap: str = "modelgate-sidecar-config"
    """Per-namespace ConfigMap the sidecar watches (the operator writes it in each namespace)."""
    secret: str = "modelgate-sidecar-upstream-keys"  # noqa: S105 (an object name)
    """Per-namespace Secret with the upstream keys of that namespace's routes only."""
    port: int = DEFAULT_PORT
    """Client port on 127.0.0.1 unless the pod's ``modelgate.dev/port`` annotation says otherwise."""
    admin_port: int = DEFAULT_ADMIN_PORT
    """Port on the pod IP serving /metrics, /healthz and /readyz (probes, Prometheus, rollout)."""
    resources: Mapping[str, Any] = field(default_factory=_default_resources)
    security_context: Mapping[str, Any] = field(default_factory=_default_security_context)
    log_level: str = "info"
    shutdown_grace_seconds: int = 5
    """Drain time after SIGTERM; a native sidecar is stopped after the app, so little is left."""
    startup_seconds: int = 300
    """How long the app waits for the sidecar's first config before the kubelet restarts it."""
    api_keys_secret: str | None = None
    """Secret every sidecar namespace must hold with the sidecars' API keys; None: pod-local trust."""
    excluded_namespaces: frozenset[str] = frozenset({"kube-system"})
    """Never injected (the operator's own namespace is added here by the settings)."""

    @classmethod
    def from_data(cls, data: Mapping[str, Any], excluded: frozenset[str] = frozenset()) -> SidecarTemplate:
        """Validate the chart's document; raises :class:`TemplateError` naming the bad field."""
        image = data.get("image")
        if not isinstance(image, str) or not image:
            raise TemplateError("sidecar template: 'image' must be a non-empty string")
        values: dict[str, Any] = {"image": image, **_strings(data), **_integers(data), **_objects(data)}
        template = cls(**values, excluded_namespaces=frozenset({"kube-system"}) | excluded)
        if template.image_pull_policy not in _PULL_POLICIES:
            raise TemplateError(f"sidecar template: 'imagePullPolicy' must be one of {sorted(_PULL_POLICIES)}")
        if template.log_level not in _LOG_LEVELS:
            raise TemplateError(f"sidecar template: 'logLevel' must be one of {sorted(_LOG_LEVELS)}")
        if template.port == template.admin_port:
            raise TemplateError("sidecar template: 'port' and 'adminPort' must differ")
        return template


def _strings(data: Mapping[str, Any]) -> dict[str, str]:
    values = {}
    for key, name in (
        ("imagePullPolicy", "image_pull_policy"),
        ("gateway", "gateway"),
        ("configMap", "configmap"),
        ("secret", "secret"),
        ("logLevel", "log_level"),
        ("apiKeysSecret", "api_keys_secret"),
    ):
        if key in data:
            if not isinstance(data[key], str) or not data[key]:
                raise TemplateError(f"sidecar template: {key!r} must be a non-empty string")
            values[name] = data[key]
    return values


def _integers(data: Mapping[str, Any]) -> dict[str, int]:
    values = {}
    for key, name, low, high in (
        ("port", "port", 1, 65535),
        ("adminPort", "admin_port", 1, 65535),
        ("shutdownGraceSeconds", "shutdown_grace_seconds", 0, 3600),
        ("startupSeconds", "startup_seconds", 1, 3600),
    ):
        if key in data:
            value = data[key]
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise TemplateError(f"sidecar template: {key!r} must be an integer in [{low}, {high}]")
            values[name] = value
    return values


def _objects(data: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    values = {}
    for key, name in (("resources", "resources"), ("securityContext", "security_context")):
        if key in data:
            if not isinstance(data[key], Mapping):
                raise TemplateError(f"sidecar template: {key!r} must be an object")
            values[name] = dict(data[key])
    return values


def load_template(path: str, excluded: frozenset[str] = frozenset()) -> SidecarTemplate:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise TemplateError(f"sidecar template {path}: {exc}") from None
    if not isinstance(data, Mapping):
        raise TemplateError(f"sidecar template {path}: expected a JSON object")
    return SidecarTemplate.from_data(data, excluded)
