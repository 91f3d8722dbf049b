"""Models list and health endpoints."""

from __future__ import annotations

from aiohttp import web

from ..appkeys import STATE
from ..appstate import GatewayState
from ..observability.recording import RequestRecord
from .endpoint import authenticate, endpoint, request_id_of


@endpoint("models")
async def list_models(request: web.Request, state: GatewayState, record: RequestRecord) -> web.StreamResponse:
    runtime = state.current()
    key = authenticate(request, runtime, record)
    data = [
        {"id": name, "object": "model", "created": 0, "owned_by": "modelgate"}
        for name in runtime.models
        if key is None or key.allows(name)
    ]
    record.status = 200
    return web.json_response({"object": "list", "data": data}, headers={"X-Request-Id": record.request_id})


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
