"""Who is calling, as response ids see it, and relaying an opened call's answer under ids that are theirs.

Shared by ``create`` (a ``previous_response_id``) and ``stored`` (the calls on a stored response).
Follow-up calls find their deployment inside the signed id, which only its owner (the caller's
tenant) can use: for anyone else it does not exist.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web

from .. import ids
from ..appstate import GatewayState
from ..errors import InvalidRequest, NotFound
from ..observability.recording import RequestRecord
from ..runtime import DeploymentRuntime, KeyRuntime, RuntimeConfig
from ..streaming.answer import relay_json
from ..streaming.relay import relay_stream
from ..upstream.executor import Opened


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


def resolve_id(caller: Caller, runtime: RuntimeConfig, response_id: Any,
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


def served_headers(record: RequestRecord, opened: Opened) -> dict[str, str]:
    return {"X-Request-Id": record.request_id, "X-Modelgate-Deployment": opened.dep.name,
            "X-Modelgate-Attempts": str(len(record.attempts))}


async def relay_answer(request: web.Request, record: RequestRecord, caller: Caller, opened: Opened,
                 stream: bool) -> web.StreamResponse:
    make_id = caller.make_id(opened.dep.name)
    headers = served_headers(record, opened)
    if stream:
        return await relay_stream(request, opened, record, make_id, headers)
    return await relay_json(request, opened, record, make_id, headers)
