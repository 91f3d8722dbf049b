"""POST /responses: create a response (streaming or not), possibly continuing a stored one.

The handler only validates what routing needs (model, stream, ids, end user); the body otherwise
goes upstream as the client sent it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

from aiohttp import web

from ..appstate import GatewayState
from ..errors import GatewayError, InvalidRequest, NotFound, PermissionDenied
from ..observability.accounting import Operation
from ..observability.recording import RequestRecord
from ..runtime import DeploymentRuntime, KeyRuntime, ModelRuntime, RuntimeConfig
from ..upstream.affinity import session_of
from ..upstream.executor import Call, ExecutorDeps, Opened, open_call
from . import background, clientheaders
from .caller import Caller, pin_conversation, relay_answer, resolve_id
from .endpoint import authenticate, endpoint, parse_object, read_body

_MAX_END_USER_CHARS = 256


def _model(
    runtime: RuntimeConfig, payload: dict[str, Any], key: KeyRuntime | None, record: RequestRecord
) -> ModelRuntime:
    name = payload.get("model")
    if not isinstance(name, str) or not name:
        raise InvalidRequest("Missing required parameter: 'model'.", param="model", code="missing_required_parameter")
    model = runtime.models.get(name)
    record.requested_model = name if model is not None else "_other"
    if model is None:
        raise NotFound(
            f"The model `{name[:256]}` does not exist or you do not have access to it.",
            param="model",
            code="model_not_found",
        )
    if key is not None and not key.allows(name):
        raise PermissionDenied(f"Your API key ({key.name}) is not allowed to use the model `{name}`.", param="model")
    record.model = name
    return model


def _serving_model(
    runtime: RuntimeConfig,
    model: ModelRuntime,
    dep: DeploymentRuntime,
    previous: str,
    param: str = "previous_response_id",
) -> ModelRuntime:
    """The model a pinned deployment serves this request as: the requested one or, failing that,
    the first of its fallbacks that has the deployment as a target. A deployment of any other
    model must not serve it: that would bypass the key's model allowlist and its pricing."""
    candidates = (model, *(runtime.models[n] for n in model.fallbacks if n in runtime.models))
    for candidate in candidates:
        for target in candidate.targets:
            if target.deployment == dep.name:
                return candidate
    raise InvalidRequest(
        f"'{previous[:128]}' is held by a deployment that model `{model.name}` "
        "does not use, nor do its fallbacks; continue it with the model that created it.",
        param=param,
        code=f"{param.removesuffix('_id')}_model_mismatch",
    )


@dataclass(slots=True)
class Routed:
    """What routing made of a create body: the model serving it, the call, whose ids it uses."""

    model: ModelRuntime
    call: Call
    caller: Caller
    previous: bool
    conversation: tuple[bytes, bytes] | None
    background: bool


@endpoint("create")
async def create_response(request: web.Request, state: GatewayState, record: RequestRecord) -> web.StreamResponse:
    runtime = state.runtime or state.current()  # current() only to refuse when there is none
    key = authenticate(request, runtime, record)
    raw = await read_body(request, runtime.max_body_bytes)
    record.request_body = raw
    payload = parse_object(raw)
    routed = route_create(state, runtime, key, record, payload, raw, request.headers)
    # A partial, not a closure: calling it costs no Python frame; all positional: no keyword dict.
    relay = partial(
        relay_answer, request, record, routed.caller, routed.call.stream, routed.conversation, routed.previous
    )
    return await serve_create(state, runtime, key, record, routed, relay)


def route_create(  # noqa: PLR0917 (the create's parts, in the order the handler has them)
    state: GatewayState,
    runtime: RuntimeConfig,
    key: KeyRuntime | None,
    record: RequestRecord,
    payload: dict[str, Any],
    raw: bytes,
    headers: Mapping[str, str],
    *,
    continues: tuple[DeploymentRuntime, str] | None = None,
) -> Routed:
    """Check and route a create body (also a WebSocket turn's). ``continues``: the deployment that
    must serve it and the id that says so, when the caller resolved that itself (a WebSocket lane)."""
    model = _model(runtime, payload, key, record)
    stream = payload.get("stream", False)
    if not isinstance(stream, bool):
        raise InvalidRequest("'stream' must be a boolean.", param="stream")
    record.stream = stream
    # The end user: ``user``, else ``safety_identifier``, else the configured header. Written out
    # here, not in a helper: it runs on every create, and most name none of them.
    end_user = payload.get("user")
    if not (isinstance(end_user, str) and end_user):
        end_user = payload.get("safety_identifier")
        if not (isinstance(end_user, str) and end_user):
            end_user = headers.get(runtime.end_user_header) if runtime.end_user_header else None
    record.end_user = end_user[:_MAX_END_USER_CHARS] if end_user else None
    call = Call("POST", "/responses", payload=payload, raw=raw, stream=stream, rewrite_model=True)
    if runtime.forward_headers:
        call.headers = clientheaders.forwarded(headers, runtime.forward_headers)
    caller = Caller(state, runtime, key)
    previous = payload.get("previous_response_id")
    if previous is not None:
        dep, upstream_id = resolve_id(caller, runtime, previous, "previous_response_id")
        model = _serving_model(runtime, model, dep, previous)
        call.pinned = dep.health_key
        call.updates["previous_response_id"] = upstream_id
    elif continues is not None:
        model = _serving_model(runtime, model, continues[0], continues[1])
        call.pinned = continues[0].name
    elif runtime.affinity_headers or "prompt_cache_key" in payload:
        call.session = session_of(payload, headers, runtime.affinity_headers)
    conversation = None
    if payload.get("conversation") is not None:
        dep, conversation_id, conversation = pin_conversation(caller, runtime, payload, call)
        model = _serving_model(runtime, model, dep, conversation_id, "conversation_id")
    background_create = payload.get("background") is True
    if background_create:
        record.operation = Operation.BACKGROUND
    return Routed(model, call, caller, previous is not None, conversation, background_create)


T = TypeVar("T")


async def serve_create(
    state: GatewayState,
    runtime: RuntimeConfig,
    key: KeyRuntime | None,
    record: RequestRecord,
    routed: Routed,
    relay: Callable[[Opened, Mapping[str, str] | None], Awaitable[T]],
    *,
    deps: ExecutorDeps | None = None,
) -> T:
    """Admit (budgets, rate limits), open the call (failover), relay the answer, settle.

    ``relay(opened, extra)`` writes the answer (``extra``: a limited key's x-ratelimit headers, or
    None); ``deps``: what the executor uses (default: the process's state; a
    WebSocket lane's own upstream sockets)."""
    model, call = routed.model, routed.call
    limited = state.governor.key_policy(key)  # None for keys nothing limits: no Redis call
    ticket = None
    charged: dict[str, Any] | None = None  # what a background create charged its key and tenant
    if limited is not None:  # None again only when Redis is unavailable and the policy is fail-open
        ticket = await state.governor.admit(limited, model.name, call.payload or {}, len(call.raw or b""), record)
    try:
        if ticket is None:
            opened = await open_call(deps or state, runtime, record, model, call)
            return await relay(opened, None)
        try:
            opened = await open_call(deps or state, runtime, record, model, call)
            return await relay(opened, ticket.headers)
        except GatewayError as err:
            err.headers = {**ticket.headers, **err.headers}
            raise
        finally:
            charged = state.governor.settle(ticket, record)
    finally:
        if routed.background:  # a background response outlives its create, even a stream the client left
            caller = routed.caller
            background.after_create(state, record, caller.signing_key, caller.owner, caller.accept_unowned, charged)
