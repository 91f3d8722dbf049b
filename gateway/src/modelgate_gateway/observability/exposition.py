"""The ``/metrics`` app: the gateway's registry in Prometheus text format.

:mod:`modelgate_gateway.main` serves it on the separate metrics port (one port per worker); :mod:`.observer`
fills the registry.
"""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.aiohttp import make_aiohttp_handler


def metrics_app(registry: CollectorRegistry) -> web.Application:
    """``GET /metrics`` in Prometheus text format, for the separate metrics port."""
    app = web.Application()
    app.router.add_get("/metrics", make_aiohttp_handler(registry))
    return app
