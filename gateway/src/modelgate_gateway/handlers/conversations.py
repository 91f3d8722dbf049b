"""The Conversations API: ``/v1/conversations[/{id}[/items[/{item_id}]]]``.

A conversation lives at one deployment: at the provider for Responses deployments, in the
gateway's Redis for chat-completions ones, in process for the mock. Creating one picks a
deployment of a model (the body's ``model``, a gateway extension removed before forwarding, or
the one model the caller may use); every later call, and ``conversation`` on a create, goes to
that deployment through the signed, owner-bound conversation id (:mod:`.conversation_ids`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import quote

import orjson
from aiohttp import web

from .. import ids
from ..appstate import GatewayState
from ..errors import InvalidRequest
from ..observability.recording import RequestRecord
from ..runtime import KeyRuntime, ModelRuntime, RuntimeConfig
from ..streaming.answer import relay_json
from ..streaming.jsonscan import top_level_string
from ..upstream.executor import Call, open_call
from . import clientheaders, conversation_ids, queryparams
from .caller import Caller, served_headers
from .create import _model
from .endpoint import authenticate, endpoint, parse_object, read_body


def _creating_model(
    runtime: RuntimeConfig, payload: dict[str, Any], key: KeyRuntime | None, record: RequestRecord
) -> ModelRuntime:
    if payload.get("model") is not None:
        return _model(runtime, payload, key, record)
    usable = [name for name in runtime.models if key is None or key.allows(name)]
    if len(usable) != 1:
        raise InvalidRequest(
            "Name the model whose deployment should hold the conversation: 'model' in the body "
            "(a ModelGate extension; the OpenAI SDKs send it with extra_body).",
            param="model",
            code="missing_required_parameter",
        )
    return _model(runtime, {"model": usable[0]}, key, record)


async def _body(request: web.Request, runtime: RuntimeConfig, record: RequestRecord) -> tuple[dict[str, Any], bytes]:
    raw = await read_body(request, runtime.max_body_bytes)
    record.request_body = raw
    return (parse_object(raw), raw) if raw else ({}, b"{}")


def _with_gateway_id(response: web.StreamResponse, upstream_id: str, gateway_id: str) -> web.StreamResponse:
    """A conversation object's (or deletion's) top-level ``id`` replaced by the gateway's; nothing
    else (an item may quote the id as text). Conversation objects are small: answered whole."""
    body = response.body if isinstance(response, web.Response) else None
    if isinstance(body, bytes) and response.status < 400:
        span = top_level_string(body, b"id")
        if span is not None and body[span[0] : span[1]] == orjson.dumps(upstream_id):
            assert isinstance(response, web.Response)
            response.body = body[: span[0]] + orjson.dumps(gateway_id) + body[span[1] :]
    return response


@endpoint("conversation_create")
async def create_conversation(request: web.Request, state: GatewayState, record: RequestRecord) -> web.StreamResponse:
    runtime = state.current()
    key = authenticate(request, runtime, record)
    payload, raw = await _body(request, runtime, record)
    model = _creating_model(runtime, payload, key, record)
    forwarded = {k: v for k, v in payload.items() if k != "model"}
    call = Call(
        "POST",
        "/conversations",
        payload=forwarded,
        raw=orjson.dumps(forwarded) if "model" in payload else raw,
        headers=clientheaders.forwarded(request.headers, runtime.forward_headers),
    )
    opened = await open_call(state, runtime, record, model, call)
    response = await relay_json(request, opened, record, None, served_headers(record, opened))
    body = response.body if isinstance(response, web.Response) else None
    try:
        upstream_id = orjson.loads(body).get("id") if isinstance(body, bytes) and response.status < 400 else None
    except (orjson.JSONDecodeError, AttributeError):
        upstream_id = None
    if not isinstance(upstream_id, str) or not upstream_id:
        return response
    caller = Caller(state, runtime, key)
    gateway_id = ids.encode_conversation(caller.signing_key, caller.owner, opened.dep.health_key, upstream_id)
    return _with_gateway_id(response, upstream_id, gateway_id)


async def _on_conversation(
    request: web.Request,
    state: GatewayState,
    record: RequestRecord,
    method: str,
    suffix: str,
    defined: Mapping[str, queryparams.Check],
) -> web.StreamResponse:
    runtime = state.current()
    caller = Caller(state, runtime, authenticate(request, runtime, record))
    gateway_id = request.match_info["conversation_id"]
    dep, upstream_id = conversation_ids.resolve(caller.signing_key, caller.owner, runtime, gateway_id, None)
    query = queryparams.forwarded(request.query, defined)
    call = Call(
        method,
        f"/conversations/{quote(upstream_id, safe='')}{suffix}",
        query=query or None,
        pinned=dep.health_key,
        headers=clientheaders.forwarded(request.headers, runtime.forward_headers),
    )
    if method == "POST":
        call.payload, call.raw = await _body(request, runtime, record)
    opened = await open_call(state, runtime, record, None, call)
    response = await relay_json(request, opened, record, None, served_headers(record, opened))
    return _with_gateway_id(response, upstream_id, gateway_id)


def _item_suffix(request: web.Request) -> str:
    return "/items/" + quote(request.match_info["item_id"], safe="")


def _on(
    route: str, method: str, suffix: Callable[[web.Request], str], defined: Mapping[str, queryparams.Check]
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """The handler of one call on a conversation (all of them differ only in these four)."""

    async def handler(request: web.Request, state: GatewayState, record: RequestRecord) -> web.StreamResponse:
        return await _on_conversation(request, state, record, method, suffix(request), defined)

    handler.__name__ = route
    return endpoint(route)(handler)


def _fixed(suffix: str) -> Callable[[web.Request], str]:
    return lambda _request: suffix


retrieve_conversation = _on("conversation_retrieve", "GET", _fixed(""), queryparams.NONE)
update_conversation = _on("conversation_update", "POST", _fixed(""), queryparams.NONE)
delete_conversation = _on("conversation_delete", "DELETE", _fixed(""), queryparams.NONE)
list_items = _on("conversation_items", "GET", _fixed("/items"), queryparams.CONVERSATION_ITEMS)
create_items = _on("conversation_items", "POST", _fixed("/items"), queryparams.INCLUDE)
retrieve_item = _on("conversation_item", "GET", _item_suffix, queryparams.INCLUDE)
delete_item = _on("conversation_item", "DELETE", _item_suffix, queryparams.NONE)


def add_routes(app: web.Application, prefix: str) -> None:
    base = f"{prefix}/conversations"
    app.router.add_post(base, create_conversation)
    app.router.add_get(base + "/{conversation_id}", retrieve_conversation)
    app.router.add_post(base + "/{conversation_id}", update_conversation)
    app.router.add_delete(base + "/{conversation_id}", delete_conversation)
    app.router.add_get(base + "/{conversation_id}/items", list_items)
    app.router.add_post(base + "/{conversation_id}/items", create_items)
    app.router.add_get(base + "/{conversation_id}/items/{item_id}", retrieve_item)
    app.router.add_delete(base + "/{conversation_id}/items/{item_id}", delete_item)
