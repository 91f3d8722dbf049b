"""Settings of sidecar mode, parsed once from the environment (names in docs/sidecar.md).

Sidecar mode is on when ``MODELGATE_OPERATOR_SIDECAR_TEMPLATE`` names the template file the chart
renders; everything else has a default derived from the gateway name. Only
:meth:`InjectionSettings.from_env` reads the environment.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..settings import SettingsError


def _int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise SettingsError(f"{name}: {raw!r} is not an integer in [{low}, {high}]")
    return int(raw)


@dataclass(frozen=True, slots=True)
class InjectionSettings:
    template_path: str
    """The sidecar template (JSON) the chart renders into the operator's ConfigMap."""
    namespace: str
    """The operator's namespace: never injected; holds the TLS Secret and the webhook Service."""
    configuration: str = "modelgate-sidecar-injector"
    """MutatingWebhookConfiguration whose caBundle the operator keeps in sync."""
    tls_secret: str = "modelgate-webhook-tls"  # noqa: S105 (an object name)
    """Secret holding the webhook's CA and serving certificate (shared by every replica)."""
    service: str = "modelgate-webhook"
    """Service in front of the webhook; its DNS names go into the serving certificate."""
    extra_names: tuple[str, ...] = ()
    """More DNS names or IP addresses for the serving certificate (a webhook called by URL)."""
    host: str = "0.0.0.0"  # noqa: S104 (the API server reaches the pod IP)
    port: int = 9443
    cert_dir: str | None = None
    """cert-manager mode: read tls.crt / tls.key from here; the CA and caBundle are not managed."""
    check_seconds: int = 60
    """Period of the certificate and caBundle check (renewal is due weeks ahead; a minute bounds
    how long a caBundle reset by someone else, e.g. a re-applied manifest, stays wrong)."""
    cluster_role: str = "modelgate-sidecar"
    """ClusterRole the operator binds to the injected pods' ServiceAccounts in each namespace."""
    sharing_namespaces: frozenset[str] = frozenset()
    """Namespaces whose routes may be shared into other namespaces (spec.sidecars.shareWith)."""

    @property
    def names(self) -> tuple[str, ...]:
        base = f"{self.service}.{self.namespace}.svc"
        return (base, f"{base}.cluster.local", *self.extra_names)

    @classmethod
    def from_env(cls, env: Mapping[str, str], gateway: str, namespace: str) -> InjectionSettings | None:
        """None when sidecar mode is off; raises :class:`SettingsError` on bad values."""
        template = env.get("MODELGATE_OPERATOR_SIDECAR_TEMPLATE", "").strip()
        if not template:
            return None
        extra = tuple(n.strip() for n in env.get("MODELGATE_OPERATOR_WEBHOOK_EXTRA_NAMES", "").split(",") if n.strip())
        return cls(
            template_path=template,
            namespace=namespace,
            configuration=(
                env.get("MODELGATE_OPERATOR_WEBHOOK_CONFIGURATION", "").strip() or f"{gateway}-sidecar-injector"
            ),
            tls_secret=env.get("MODELGATE_OPERATOR_WEBHOOK_SECRET", "").strip() or f"{gateway}-webhook-tls",
            service=env.get("MODELGATE_OPERATOR_WEBHOOK_SERVICE", "").strip() or f"{gateway}-webhook",
            extra_names=extra,
            host=env.get("MODELGATE_OPERATOR_WEBHOOK_HOST", "").strip() or "0.0.0.0",  # noqa: S104
            port=_int(env, "MODELGATE_OPERATOR_WEBHOOK_PORT", 9443, 0, 65535),
            cert_dir=env.get("MODELGATE_OPERATOR_WEBHOOK_CERT_DIR", "").strip() or None,
            check_seconds=_int(env, "MODELGATE_OPERATOR_WEBHOOK_CERT_CHECK_SECONDS", 60, 1, 86400),
            cluster_role=env.get("MODELGATE_OPERATOR_SIDECAR_CLUSTERROLE", "").strip() or f"{gateway}-sidecar",
            sharing_namespaces=frozenset(
                n.strip()
                for n in env.get("MODELGATE_OPERATOR_SIDECAR_SHARING_NAMESPACES", namespace).split(",")
                if n.strip()
            ),
        )
