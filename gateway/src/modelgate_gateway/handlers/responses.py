"""The Responses API endpoints: create (streaming or not) and the calls on a stored response.

Handlers only validate what routing needs (model, stream, ids, end user, follow-up query
parameters); the body otherwise goes upstream as the client sent it. Follow-up calls find their
deployment inside the signed id, which only its owner (the caller's tenant) can use: for anyone
else it does not exist.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
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
from . import queryparams
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


class _Caller:
    """Who is calling, as ids see it: the signing key, the caller's owner tag, and whether ids
    issued before owners existed are theirs (only without a key: see ids.py)."""

    __slots__ = ("accept_unowned", "owner", "signing_key")

    def __init__(self, state: GatewayState, runtime: RuntimeConfig, key: KeyRuntime | None) -> None:
        self.signing_key = state.signing_key(runtime)
        self.owner = ids.owner_tag(self.signing_key, key.owner if key is not None else ids.ANONYMOUS)
        self.accept_unowned = key is None

    def make_id(self, dep_name: str) -> Callable[[str], str]:
        signing_key, owner = self.signing_key, self.owner
        return lambda upstream_id: ids.encode(signing_key, owner, dep_name, upstream_id)


def _resolve(caller: _Caller, runtime: RuntimeConfig, response_id: Any,
             param: str | None) -> tuple[DeploymentRuntime, str]:
    """The deployment and upstream id inside the caller's own id; another owner's id, like a forged
    one, is not found (same status, message and code)."""
    if not isinstance(response_id, str) or not response_id:
        raise InvalidRequest(f"'{param}' must be a response id string.", param=param)
    ref = ids.decode(caller.signing_key, caller.owner, response_id, accept_unowned=caller.accept_unowned)
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


def _serving_model(runtime: RuntimeConfig, model: ModelRuntime, dep: DeploymentRuntime,
                   previous: str) -> ModelRuntime:
    """The model a pinned deployment serves this request as: the requested one or, failing that,
    the first of its fallbacks that has the deployment as a target. A deployment of any other
    model must not serve it: that would bypass the key's model allowlist and its pricing."""
    candidates = (model, *(runtime.models[n] for n in model.fallbacks if n in runtime.models))
    for candidate in candidates:
        for target in candidate.targets:
            if target.deployment == dep.name:
                return candidate
    raise InvalidRequest(f"Previous response '{previous[:128]}' is held by a deployment that model `{model.name}` "
                         "does not use, nor do its fallbacks; continue it with the model that created it.",
                         param="previous_response_id", code="previous_response_model_mismatch")


def _served_headers(record: RequestRecord, opened: Opened) -> dict[str, str]:
    return {"X-Request-Id": record.request_id, "X-Modelgate-Deployment": opened.dep.name,
            "X-Modelgate-Attempts": str(len(record.attempts))}


async def _relay(request: web.Request, record: RequestRecord, caller: _Caller, opened: Opened,
                 stream: bool) -> web.StreamResponse:
    make_id = caller.make_id(opened.dep.name)
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
    caller = _Caller(state, runtime, key)
    previous = payload.get("previous_response_id")
    if previous is not None:
        dep, upstream_id = _resolve(caller, runtime, previous, "previous_response_id")
        model = _serving_model(runtime, model, dep, previous)
        call.pinned = dep.name
        call.updates["previous_response_id"] = upstream_id
    opened = await open_call(state, runtime, record, model, call)
    return await _relay(request, record, caller, opened, stream)


async def _follow_up(request: web.Request, state: GatewayState, record: RequestRecord, method: str,
                     suffix: str, defined: Mapping[str, queryparams.Check]) -> web.StreamResponse:
    runtime = state.current()
    caller = _Caller(state, runtime, authenticate(request, runtime, record))
    dep, upstream_id = _resolve(caller, runtime, request.match_info["response_id"], None)
    query = queryparams.forwarded(request.query, defined)
    stream = query.get("stream") == "true"
    record.stream = stream
    call = Call(method, f"/responses/{quote(upstream_id, safe='')}{suffix}", query=query or None,
                stream=stream, pinned=dep.name)
    if method == "POST":
        call.payload, call.raw = {}, b"{}"
    opened = await open_call(state, runtime, record, None, call)
    return await _relay(request, record, caller, opened, stream)


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
