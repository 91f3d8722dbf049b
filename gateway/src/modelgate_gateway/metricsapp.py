"""The metrics-port app: the registry in Prometheus text format, and the health endpoints.

:mod:`.main` serves it on the separate metrics port (one port per worker); :mod:`.observing`
fills the registry. ``/healthz`` and ``/readyz`` are here too because a sidecar's client port
listens on 127.0.0.1 only, where neither the kubelet's probes nor the operator's rollout check
can reach it: they use the metrics port on the pod IP.
"""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.aiohttp import make_aiohttp_handler

from .appstate import GatewayState
from .handlers import service
from .keys import STATE


def metrics_app(registry: CollectorRegistry, state: GatewayState | None = None) -> web.Application:
    """``GET /metrics``; with ``state`` also ``GET /healthz`` and ``GET /readyz`` as on the client port."""
    app = web.Application()
    app.router.add_get("/metrics", make_aiohttp_handler(registry))
    if state is not None:
        app[STATE] = state
        app.router.add_get("/healthz", service.healthz)
        app.router.add_get("/readyz", service.readyz)
    return app
