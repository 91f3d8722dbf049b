"""The mutating webhook over HTTPS: aiohttp beside kopf in the operator's event loop.

Two paths, so the answer never needs a namespace read: the webhook configuration sends pods of
namespaces labelled ``modelgate.dev/inject=enabled`` to ``/mutate/namespace-pods`` and other pods
that carry the annotation to ``/mutate/pods``. The serving certificate can be replaced while
serving (:meth:`WebhookServer.load_certificate`): new connections get the new one.
Neighbours: :mod:`.review` (the answer), :mod:`.certstore` (where certificates come from).
"""

from __future__ import annotations

import logging
import os
import ssl
import tempfile
from collections.abc import Callable
from pathlib import Path

from aiohttp import web

from .mutation import Action
from .review import BadReview, Reviewed, review_pod
from .template import SidecarTemplate

logger = logging.getLogger("modelgate_operator.injection")
POD_PATH = "/mutate/pods"
NAMESPACE_POD_PATH = "/mutate/namespace-pods"
# A Pod object is at most ~1.5 MB (etcd's request limit); a review carries one, plus little else.
_MAX_BODY = 3 * 1024 * 1024


def _error(status: int, message: str, code: str) -> web.Response:
    body = {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": code}}
    return web.json_response(body, status=status)


class WebhookServer:
    """Serves AdmissionReviews; ``on_injected(namespace)`` is told about every real injection."""

    def __init__(
        self, template: SidecarTemplate, host: str, port: int, on_injected: Callable[[str], None] | None = None
    ) -> None:
        self.template = template
        self.host = host
        self.port = port
        self.on_injected = on_injected
        self.ssl_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ssl_context.minimum_version = ssl.TLSVersion.TLSv1_2
        self._certificate: bytes | None = None
        self._runner: web.AppRunner | None = None

    def load_certificate(self, cert_pem: bytes, key_pem: bytes) -> bool:
        """Serve this certificate from now on; False when it is the one already served."""
        if cert_pem == self._certificate:
            return False
        # The ssl module loads keys only from files: a private directory, removed at once.
        with tempfile.TemporaryDirectory(prefix="modelgate-webhook-") as folder:
            cert_path, key_path = Path(folder, "tls.crt"), Path(folder, "tls.key")
            cert_path.write_bytes(cert_pem)
            fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as key_file:
                key_file.write(key_pem)
            self.ssl_context.load_cert_chain(cert_path, key_path)
        self._certificate = cert_pem
        return True

    def app(self) -> web.Application:
        app = web.Application(client_max_size=_MAX_BODY)
        app.router.add_post(POD_PATH, self._pods)
        app.router.add_post(NAMESPACE_POD_PATH, self._namespace_pods)
        app.router.add_get("/healthz", self._healthz)
        return app

    async def start(self) -> None:
        if self._certificate is None:
            raise RuntimeError("load a serving certificate before starting the webhook server")
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, ssl_context=self.ssl_context)
        await site.start()
        bound = self._runner.addresses[0]
        self.port = int(bound[1])
        logger.info("sidecar injection webhook listening on https://%s:%d", self.host, self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _healthz(self, _request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def _pods(self, request: web.Request) -> web.Response:
        return await self._review(request, namespace_enabled=False)

    async def _namespace_pods(self, request: web.Request) -> web.Response:
        return await self._review(request, namespace_enabled=True)

    async def _review(self, request: web.Request, namespace_enabled: bool) -> web.Response:
        body = await request.read()
        try:
            reviewed = review_pod(body, namespace_enabled, self.template)
        except BadReview as exc:
            return _error(400, f"Not an admission.k8s.io/v1 AdmissionReview: {exc}", "invalid_admission_review")
        self._note(reviewed)
        return web.json_response(reviewed.response)

    def _note(self, reviewed: Reviewed) -> None:
        decision = reviewed.decision
        if decision is None or decision.action is Action.SKIP:
            return
        if decision.action is Action.DENY:
            logger.info("refused a pod in %s: %s", reviewed.namespace, decision.reason)
            return
        logger.debug("injected a pod in %s: %s", reviewed.namespace, decision.reason)
        if self.on_injected is not None and not reviewed.dry_run:
            self.on_injected(reviewed.namespace)
