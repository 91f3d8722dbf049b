"""Where the webhook's serving certificate comes from, and the caBundle kept in sync with it.

:class:`ManagedCertificates` (the default): the CA and serving certificate live in one Secret in
the operator's namespace, shared by every replica; each check applies :func:`.certs.plan` (with
optimistic concurrency, so two replicas never overwrite each other), then writes the bundle into
every webhook of the MutatingWebhookConfiguration, and only then hands the certificate to the
server. :class:`MountedCertificates`: cert-manager issues the certificate into a mounted Secret
and injects the caBundle itself; the operator only reads the files. Blocking: run in a thread.
"""

from __future__ import annotations

import base64
import datetime
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ..errors import KubeApiError
from .certs import TLS_CERT, TLS_KEY, Lifetimes, ca_bundle, plan

logger = logging.getLogger("modelgate_operator.injection")
# Two replicas starting together race once; a third loss in a row means something else is wrong.
_ATTEMPTS = 3


def utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class CertificateApi(Protocol):
    """The API calls of :class:`ManagedCertificates` (:class:`.client.InjectionClient` has them)."""

    def read_secret(self, namespace: str, name: str) -> tuple[dict[str, bytes], str | None] | None: ...

    def create_secret(self, namespace: str, name: str, data: Mapping[str, bytes]) -> bool: ...

    def update_secret(
        self,
        namespace: str,
        name: str,
        data: Mapping[str, bytes],
        old: Mapping[str, bytes],
        resource_version: str | None,
    ) -> bool: ...

    def read_webhook_configuration(self, name: str) -> dict[str, Any] | None: ...

    def set_ca_bundle(self, name: str, index: int, webhook: str, bundle: bytes) -> None: ...


@dataclass(frozen=True, slots=True)
class Serving:
    certificate: bytes
    key: bytes


class ManagedCertificates:
    """Self-signed CA managed by the operator; see the module docstring for the order of writes."""

    def __init__(
        self,
        api: CertificateApi,
        namespace: str,
        secret: str,
        configuration: str,
        names: Sequence[str],
        *,
        lifetimes: Lifetimes | None = None,
        now: Callable[[], datetime.datetime] = utc_now,
    ) -> None:
        self.api = api
        self.namespace = namespace
        self.secret = secret
        self.configuration = configuration
        self.names = tuple(names)
        self.lifetimes = lifetimes or Lifetimes()
        self.now = now

    def current(self) -> Serving:
        data = self._converge()
        self.sync_ca_bundle(ca_bundle(data))
        return Serving(data[TLS_CERT], data[TLS_KEY])

    def _converge(self) -> dict[str, bytes]:
        for _ in range(_ATTEMPTS):
            found = self.api.read_secret(self.namespace, self.secret)
            data, version = found if found is not None else ({}, None)
            wanted = plan(data, self.names, self.now(), self.lifetimes)
            if wanted == data:
                return data
            if found is None:
                written = self.api.create_secret(self.namespace, self.secret, wanted)
            else:
                written = self.api.update_secret(self.namespace, self.secret, wanted, data, version)
            if written:
                logger.info(
                    "webhook certificates in Secret %s/%s renewed (%s)",
                    self.namespace,
                    self.secret,
                    ", ".join(sorted(k for k in wanted if wanted[k] != data.get(k))),
                )
                return wanted
        raise KubeApiError(f"Secret {self.namespace}/{self.secret} kept changing under the operator")

    def sync_ca_bundle(self, bundle: bytes) -> int:
        """Write the bundle into every webhook that lacks it; the number of webhooks patched."""
        configuration = self.api.read_webhook_configuration(self.configuration)
        if configuration is None:
            logger.warning(
                "MutatingWebhookConfiguration %s not found: sidecars are not injected until the chart creates it",
                self.configuration,
            )
            return 0
        encoded = base64.b64encode(bundle).decode()
        patched = 0
        for index, webhook in enumerate(configuration.get("webhooks") or []):
            if (webhook.get("clientConfig") or {}).get("caBundle") != encoded:
                self.api.set_ca_bundle(self.configuration, index, str(webhook.get("name")), bundle)
                patched += 1
        if patched:
            logger.info("caBundle of %d webhook(s) in %s updated", patched, self.configuration)
        return patched


class MountedCertificates:
    """cert-manager mode: the serving certificate as the kubelet mounted it."""

    def __init__(self, folder: str) -> None:
        self.folder = Path(folder)

    def current(self) -> Serving:
        try:
            return Serving((self.folder / TLS_CERT).read_bytes(), (self.folder / TLS_KEY).read_bytes())
        except OSError as exc:
            raise KubeApiError(f"webhook certificate in {self.folder}: {exc}") from None
