"""Who is calling, as response ids see it, and relaying an opened call's answer under ids that are theirs.

Shared by ``create`` (a ``previous_response_id``) and ``stored`` (the calls on a stored response).
Follow-up calls find their deployment inside the signed id, which only its owner (the caller's
tenant) can use: for anyone else it does not exist.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import hdrs, web

from .. import ids
from ..appstate import GatewayState
from ..errors import GatewayError, InvalidRequest, NotFound
from ..observability.recording import RequestRecord
from ..runtime import DeploymentRuntime, KeyRuntime, RuntimeConfig
from ..streaming.answer import relay_json
from ..streaming.relay import relay_into
from ..streaming.sse import SseRelayState
from ..upstream.executor import Call, Opened
from . import conversation_ids
from .headernames import X_MODELGATE_ATTEMPTS, X_MODELGATE_DEPLOYMENT, X_REQUEST_ID


class Caller:
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


def resolve_id(
    caller: Caller, runtime: RuntimeConfig, response_id: Any, param: str | None
) -> tuple[DeploymentRuntime, str]:
    """The deployment and upstream id inside the caller's own id; another owner's id, like a forged
    one, is not found (same status, message and code)."""
    if not isinstance(response_id, str) or not response_id:
        raise InvalidRequest(f"'{param}' must be a response id string.", param=param)
    ref = ids.decode(caller.signing_key, caller.owner, response_id, accept_unowned=caller.accept_unowned)
    shown = response_id[:128]

    def missing() -> GatewayError:
        if param is not None:
            return InvalidRequest(
                f"Previous response with id '{shown}' not found.", param=param, code="previous_response_not_found"
            )
        return NotFound(f"No response found with id '{shown}'.")

    return conversation_ids.held_by(runtime, ref, shown, param, missing)


def pin_conversation(
    caller: Caller, runtime: RuntimeConfig, payload: dict[str, Any], call: Call
) -> tuple[DeploymentRuntime, str, tuple[bytes, bytes]]:
    """Send a call naming ``conversation`` to the deployment holding it: that deployment, the
    conversation's gateway id, and (upstream id, gateway id) to rewrite in the answer."""
    sent = payload["conversation"]
    dep, upstream_id = conversation_ids.resolve(caller.signing_key, caller.owner, runtime, sent, "conversation")
    if call.pinned is not None and call.pinned != dep.health_key:
        raise InvalidRequest(
            "The previous response and the conversation are held by different deployments.",
            param="conversation",
            code="conversation_mismatch",
        )
    call.pinned, call.session = dep.health_key, None
    call.updates["conversation"] = conversation_ids.upstream_value(sent, upstream_id)
    gateway_id = str(sent.get("id") if isinstance(sent, dict) else sent)
    return dep, gateway_id, (upstream_id.encode(), gateway_id.encode())


def served_headers(record: RequestRecord, opened: Opened) -> dict[str, str]:
    return {
        X_REQUEST_ID: record.request_id,
        X_MODELGATE_DEPLOYMENT: opened.dep.name,
        X_MODELGATE_ATTEMPTS: str(len(record.attempts)),
    }


async def relay_answer(  # noqa: PLR0917 (in this order so a partial binds all but the last two)
    request: web.Request,
    record: RequestRecord,
    caller: Caller,
    stream: bool,
    conversation: tuple[bytes, bytes] | None,
    previous: bool,
    opened: Opened,
    extra: Mapping[str, str] | None,
) -> web.StreamResponse:
    """``conversation``: (upstream id, gateway id) of the conversation the request named;
    ``previous``: whether the answer may carry a ``previous_response_id`` (see relay_json);
    ``extra``: more headers for the answer (a limited key's x-ratelimit headers).

    Positional parameters only, ``opened`` and ``extra`` last: the create binds the others with a
    ``functools.partial`` that then costs no keyword dictionary per call."""
    make_id = caller.make_id(opened.dep.health_key)
    headers = served_headers(record, opened)
    if extra:
        headers.update(extra)
    if stream:  # built here, not in a helper: one Python frame fewer per stream
        # The content type as a header, not through ``resp.content_type``: aiohttp's setter parses
        # and rebuilds it (~90 bytecodes, five Python calls) to produce these same bytes.
        headers[hdrs.CONTENT_TYPE] = "text/event-stream"
        headers[hdrs.CACHE_CONTROL] = "no-cache"
        resp = web.StreamResponse(status=200, headers=headers)
        sse = SseRelayState(make_id, opened.dep.redactor, conversation)
        await relay_into(resp, opened, record, sse, resp.prepare(request))
        return resp
    return await relay_json(request, opened, record, make_id, headers, conversation, previous=previous)
