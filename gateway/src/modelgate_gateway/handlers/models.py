"""GET /models: the models the caller's key may use."""

from __future__ import annotations

from aiohttp import web

from ..appstate import GatewayState
from ..observability.recording import RequestRecord
from .endpoint import authenticate, endpoint


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
