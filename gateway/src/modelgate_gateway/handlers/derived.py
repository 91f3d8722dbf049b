"""``POST /v1/responses/input_tokens`` and ``POST /v1/responses/compact``: calls derived from a conversation.

Both take a create-like body and, like create, go to the deployment holding ``previous_response_id``
when there is one (the conversation lives there), else to one of the model's deployments (the
session's, when the body names one: :mod:`..upstream.affinity`). Counting input tokens is not
billed (no usage is recorded: the route is not one that consumes tokens); compaction runs the
model and is billed like a create (``observing`` accounts the usage of both routes).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..appstate import GatewayState
from ..observability.recording import RequestRecord
from ..runtime import KeyRuntime, ModelRuntime, RuntimeConfig
from ..streaming.answer import relay_json
from ..upstream.affinity import session_of
from ..upstream.executor import Call, open_call
from . import clientheaders
from .caller import Caller, pin_conversation, resolve_id, served_headers
from .create import _model, _serving_model
from .endpoint import authenticate, endpoint, parse_object, read_body


async def _derived(
    request: web.Request, state: GatewayState, record: RequestRecord, path: str, model_required: bool
) -> tuple[Call, Caller, RuntimeConfig, ModelRuntime | None]:
    runtime = state.current()
    key: KeyRuntime | None = authenticate(request, runtime, record)
    raw = await read_body(request, runtime.max_body_bytes)
    record.request_body = raw
    payload: dict[str, Any] = parse_object(raw)
    previous = payload.get("previous_response_id")
    model = None
    if model_required or previous is None or payload.get("model") is not None:
        model = _model(runtime, payload, key, record)
    call = Call(
        "POST",
        path,
        payload=payload,
        raw=raw,
        rewrite_model=model is not None,
        headers=clientheaders.forwarded(request.headers, runtime.forward_headers),
    )
    caller = Caller(state, runtime, key)
    if previous is not None:
        dep, upstream_id = resolve_id(caller, runtime, previous, "previous_response_id")
        if model is not None:
            model = _serving_model(runtime, model, dep, previous)
        call.pinned = dep.health_key
        call.updates["previous_response_id"] = upstream_id
    elif runtime.affinity_headers or "prompt_cache_key" in payload:
        call.session = session_of(payload, request.headers, runtime.affinity_headers)
    if payload.get("conversation") is not None:
        dep, conversation, _ = pin_conversation(caller, runtime, payload, call)
        if model is not None:
            model = _serving_model(runtime, model, dep, conversation, "conversation_id")
    return call, caller, runtime, model


@endpoint("input_tokens")
async def count_input_tokens(request: web.Request, state: GatewayState, record: RequestRecord) -> web.StreamResponse:
    call, _, runtime, model = await _derived(request, state, record, "/responses/input_tokens", False)
    opened = await open_call(state, runtime, record, model, call)
    return await relay_json(request, opened, record, None, served_headers(record, opened))


@endpoint("compact")
async def compact_response(request: web.Request, state: GatewayState, record: RequestRecord) -> web.StreamResponse:
    call, caller, runtime, model = await _derived(request, state, record, "/responses/compact", True)
    opened = await open_call(state, runtime, record, model, call)
    make_id = caller.make_id(opened.dep.health_key)
    return await relay_json(request, opened, record, make_id, served_headers(record, opened))
