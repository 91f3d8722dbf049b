"""The Responses API endpoints: create (streaming or not) and the calls on a stored response.

Handlers only validate what routing needs (model, stream, ids, end user); the body otherwise
goes upstream as the client sent it. Follow-up calls find their deployment inside the signed id.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from aiohttp import web

from .. import ids
from ..appstate import GatewayState
from ..errors import InvalidRequest, NotFound, PermissionDenied
from ..recording import RequestRecord
from ..runtime import DeploymentRuntime, KeyRuntime, ModelRuntime, RuntimeConfig
from ..streaming.answer import relay_json
from ..streaming.relay import relay_stream
from ..upstream.executor import Call, Opened, open_call
from .context import authenticate, endpoint, parse_object, read_body

_MAX_END_USER_CHARS = 256


def _model(runtime: RuntimeConfig, payload: dict[str, Any], key: KeyRuntime | None,
           record: RequestRecord) -> ModelRuntime:
    name = payload.get("model")
    if not isinstance(name, str) or not name:
        raise InvalidRequest("Missing required parameter: 'model'.", param="model", code="missing_required_parameter")
    model = runtime.models.get(name)
    record.requested_model = name if model is not None else "_other"
    if model is None:
        raise NotFound(f"The model `{name[:256]}` does not exist or you do not have access to it.",
                       param="model", code="model_not_found")
    if key is not None and not key.allows(name):
        raise PermissionDenied(f"Your API key ({key.name}) is not allowed to use the model `{name}`.",
                               param="model")
    record.model = name
    return model


def _end_user(payload: dict[str, Any], request: web.Request, runtime: RuntimeConfig) -> str | None:
    for field in ("user", "safety_identifier"):
        value = payload.get(field)
        if isinstance(value, str) and value:
            return value[:_MAX_END_USER_CHARS]
    if runtime.end_user_header:
        value = request.headers.get(runtime.end_user_header)
        if value:
            return value[:_MAX_END_USER_CHARS]
    return None


def _resolve(state: GatewayState, runtime: RuntimeConfig, response_id: Any,
             param: str | None) -> tuple[DeploymentRuntime, str]:
    if not isinstance(response_id, str) or not response_id:
        raise InvalidRequest(f"'{param}' must be a response id string.", param=param)
    ref = ids.decode(state.signing_key(runtime), response_id)
    shown = response_id[:128]
    if ref is None:
        if param is not None:
            raise InvalidRequest(f"Previous response with id '{shown}' not found.", param=param,
                                 code="previous_response_not_found")
        raise NotFound(f"No response found with id '{shown}'.")
    dep = runtime.deployments.get(ref.deployment)
    if dep is None:
        raise NotFound(f"Response '{shown}' was served by deployment '{ref.deployment}', which is no "
                       "longer configured.", param=param)
    return dep, ref.upstream_id


def _served_headers(record: RequestRecord, opened: Opened) -> dict[str, str]:
    return {"X-Request-Id": record.request_id, "X-Modelgate-Deployment": opened.dep.name,
            "X-Modelgate-Attempts": str(len(record.attempts))}


def _id_maker(state: GatewayState, runtime: RuntimeConfig, dep_name: str) -> Callable[[str], str]:
    key = state.signing_key(runtime)
    return lambda upstream_id: ids.encode(key, dep_name, upstream_id)


async def _relay(request: web.Request, state: GatewayState, runtime: RuntimeConfig,
                 record: RequestRecord, opened: Opened, stream: bool) -> web.StreamResponse:
    make_id = _id_maker(state, runtime, opened.dep.name)
    headers = _served_headers(record, opened)
    if stream:
        return await relay_stream(request, opened, record, make_id, headers)
    return await relay_json(request, opened, record, make_id, headers)


@endpoint("create")
async def create_response(request: web.Request, state: GatewayState, record: RequestRecord) -> web.StreamResponse:
    runtime = state.current()
    key = authenticate(request, runtime, record)
    raw = await read_body(request, runtime.max_body_bytes)
    record.request_body = raw
    payload = parse_object(raw)
    model = _model(runtime, payload, key, record)
    stream = payload.get("stream", False)
    if not isinstance(stream, bool):
        raise InvalidRequest("'stream' must be a boolean.", param="stream")
    record.stream = stream
    record.end_user = _end_user(payload, request, runtime)
    call = Call("POST", "/responses", payload=payload, raw=raw, stream=stream, rewrite_model=True)
    previous = payload.get("previous_response_id")
    if previous is not None:
        dep, upstream_id = _resolve(state, runtime, previous, "previous_response_id")
        call.pinned = dep.name
        call.updates["previous_response_id"] = upstream_id
    opened = await open_call(state, runtime, record, model, call)
    return await _relay(request, state, runtime, record, opened, stream)


async def _follow_up(request: web.Request, state: GatewayState, record: RequestRecord,
                     method: str, suffix: str) -> web.StreamResponse:
    runtime = state.current()
    authenticate(request, runtime, record)
    dep, upstream_id = _resolve(state, runtime, request.match_info["response_id"], None)
    query = dict(request.query)
    stream = suffix == "" and method == "GET" and query.get("stream") == "true"
    record.stream = stream
    call = Call(method, f"/responses/{quote(upstream_id, safe='')}{suffix}", query=query or None,
                stream=stream, pinned=dep.name)
    if method == "POST":
        call.payload, call.raw = {}, b"{}"
    opened = await open_call(state, runtime, record, None, call)
    return await _relay(request, state, runtime, record, opened, stream)


@endpoint("retrieve")
async def retrieve_response(request: web.Request, state: GatewayState, record: RequestRecord) -> web.StreamResponse:
    return await _follow_up(request, state, record, "GET", "")


@endpoint("delete")
async def delete_response(request: web.Request, state: GatewayState, record: RequestRecord) -> web.StreamResponse:
    return await _follow_up(request, state, record, "DELETE", "")


@endpoint("cancel")
async def cancel_response(request: web.Request, state: GatewayState, record: RequestRecord) -> web.StreamResponse:
    return await _follow_up(request, state, record, "POST", "/cancel")


@endpoint("input_items")
async def list_input_items(request: web.Request, state: GatewayState, record: RequestRecord) -> web.StreamResponse:
    return await _follow_up(request, state, record, "GET", "/input_items")
