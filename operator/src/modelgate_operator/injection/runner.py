"""The injector's lifetime inside the operator: certificates first, then the server, then checks.

Every replica serves the webhook (admission is not reconciliation: kopf peering does not apply).
Start-up never blocks kopf: the first certificate is fetched in the background, retried with a
bounded backoff while the API server is unreachable; the server starts as soon as one is there.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Protocol

from ..errors import KubeApiError
from .certstore import CertificateApi, ManagedCertificates, MountedCertificates, Serving
from .server import WebhookServer
from .settings import InjectionSettings
from .template import SidecarTemplate

logger = logging.getLogger("modelgate_operator.injection")
_RETRY_FIRST, _RETRY_MAX = 1.0, 60.0


class CertificateSource(Protocol):
    def current(self) -> Serving: ...


class Injector:
    def __init__(
        self,
        server: WebhookServer,
        certificates: CertificateSource,
        check_seconds: float,
        retry: tuple[float, float] = (_RETRY_FIRST, _RETRY_MAX),
    ) -> None:
        self.server = server
        self.certificates = certificates
        self.check_seconds = check_seconds
        self.retry = retry
        """First and largest delay between failed checks (doubling in between)."""
        self.serving = asyncio.Event()
        """Set once the server listens (tests and the readiness of the operator wait on it)."""
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="modelgate sidecar injector")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.server.stop()

    async def check(self) -> None:
        """Fetch (and if due, renew) the certificate and serve it; raises KubeApiError."""
        serving = await asyncio.to_thread(self.certificates.current)
        if self.server.load_certificate(serving.certificate, serving.key) and self.serving.is_set():
            logger.info("webhook serving certificate reloaded")
        if not self.serving.is_set():
            await self.server.start()
            self.serving.set()

    async def _run(self) -> None:
        first, largest = self.retry
        delay = first
        while True:  # until cancelled: one check per period, retries in between on failure
            try:
                await self.check()
            except (KubeApiError, OSError, ValueError) as exc:
                logger.warning("sidecar injector: %s; retrying in %.3gs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, largest, self.check_seconds)
                continue
            delay = first
            await asyncio.sleep(self.check_seconds)


def build_injector(
    settings: InjectionSettings, template: SidecarTemplate, api: CertificateApi, on_injected: Callable[[str], None]
) -> Injector:
    """The injector sidecar mode's settings describe: its server, and certificates managed by the
    operator (``api``) or mounted by cert-manager."""
    server = WebhookServer(template, settings.host, settings.port, on_injected=on_injected)
    certificates: CertificateSource
    if settings.cert_dir is not None:
        certificates = MountedCertificates(settings.cert_dir)
    else:
        certificates = ManagedCertificates(
            api, settings.namespace, settings.tls_secret, settings.configuration, settings.names
        )
    return Injector(server, certificates, settings.check_seconds)
