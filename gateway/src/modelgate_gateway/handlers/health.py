"""Liveness and readiness probes (no auth, no request record)."""

from __future__ import annotations

from aiohttp import web

from ..appkeys import STATE
from .endpoint import request_id_of


async def healthz(request: web.Request) -> web.Response:
    """Liveness: the process answers. Never depends on config or upstreams."""
    return web.json_response({"status": "ok"}, headers={"X-Request-Id": request_id_of(request)})


async def readyz(request: web.Request) -> web.Response:
    """Readiness: a valid config is loaded and the process is not draining.

    The body names the applied config checksum: the operator reads it to report rollout.
    """
    state = request.app[STATE]
    runtime = state.runtime
    ready = runtime is not None and not state.draining
    body = {
        "ready": ready,
        "draining": state.draining,
        "checksum": runtime.checksum if runtime else None,
        "generation": runtime.generation if runtime else None,
    }
    return web.json_response(body, status=200 if ready else 503, headers={"X-Request-Id": request_id_of(request)})
