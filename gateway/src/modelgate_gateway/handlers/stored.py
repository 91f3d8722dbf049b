"""The calls on a stored response: retrieve, delete, cancel, input_items.

Only the follow-up query parameters are validated (``queryparams``); the deployment comes from
inside the signed id.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import quote

from aiohttp import web

from ..appstate import GatewayState
from ..observability.recording import RequestRecord
from ..upstream.executor import Call, open_call
from . import background, clientheaders, queryparams, ratelimit_headers
from .caller import Caller, relay_answer, resolve_id
from .endpoint import authenticate, endpoint


async def _follow_up(
    request: web.Request,
    state: GatewayState,
    record: RequestRecord,
    method: str,
    suffix: str,
    defined: Mapping[str, queryparams.Check],
) -> web.StreamResponse:
    runtime = state.current()
    caller = Caller(state, runtime, authenticate(request, runtime, record))
    dep, upstream_id = resolve_id(caller, runtime, request.match_info["response_id"], None)
    query = queryparams.forwarded(request.query, defined)
    stream = query.get("stream") == "true"
    record.stream = stream
    path = f"/responses/{quote(upstream_id, safe='')}{suffix}"
    call = Call(method, path, query=query or None, stream=stream, pinned=dep.health_key)
    if runtime.forward_headers:
        call.headers = clientheaders.forwarded(request.headers, runtime.forward_headers)
    if method == "POST":
        call.payload, call.raw = {}, b"{}"
    opened = await open_call(state, runtime, record, None, call)
    # A stream (or a large answer) is sent before the endpoint could add them: read them now.
    extra = await ratelimit_headers.current(state, record) if state.governor.policy.rated else None
    response = await relay_answer(request, record, caller, stream, None, True, opened, extra)
    if method != "DELETE":
        background.after_follow_up(state, record, dep.health_key, upstream_id)
    return response


@endpoint("retrieve")
async def retrieve_response(request: web.Request, state: GatewayState, record: RequestRecord) -> web.StreamResponse:
    return await _follow_up(request, state, record, "GET", "", queryparams.RETRIEVE)


@endpoint("delete")
async def delete_response(request: web.Request, state: GatewayState, record: RequestRecord) -> web.StreamResponse:
    return await _follow_up(request, state, record, "DELETE", "", queryparams.NONE)


@endpoint("cancel")
async def cancel_response(request: web.Request, state: GatewayState, record: RequestRecord) -> web.StreamResponse:
    return await _follow_up(request, state, record, "POST", "/cancel", queryparams.NONE)


@endpoint("input_items")
async def list_input_items(request: web.Request, state: GatewayState, record: RequestRecord) -> web.StreamResponse:
    return await _follow_up(request, state, record, "GET", "/input_items", queryparams.INPUT_ITEMS)
