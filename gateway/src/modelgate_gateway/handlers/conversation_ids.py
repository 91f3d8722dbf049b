"""Conversation ids the gateway hands out: signed, owner-bound, naming the deployment that holds them.

Like response ids (:mod:`..ids`), a conversation id carries the deployment and the upstream's id,
signed and bound to the caller's owner, so ``conversation`` on a create and every
``/v1/conversations/{id}…`` call reach the deployment that holds the conversation; another owner's
id, like a forged one, does not exist.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from .. import ids
from ..errors import GatewayError, InvalidRequest, NotFound
from ..runtime import DeploymentRuntime, RuntimeConfig


def resolve(
    signing_key: bytes, owner: bytes, runtime: RuntimeConfig, conversation_id: Any, param: str | None
) -> tuple[DeploymentRuntime, str]:
    """The deployment and upstream id inside the caller's conversation id.

    ``param`` names the body field for a create (400 when unknown), None for a path (404).
    """
    if isinstance(conversation_id, dict):
        conversation_id = conversation_id.get("id")
    if not isinstance(conversation_id, str) or not conversation_id:
        raise InvalidRequest(f"'{param}' must be a conversation id or {{\"id\": …}}.", param=param)
    shown = conversation_id[:128]

    def missing() -> GatewayError:
        if param is not None:
            return InvalidRequest(
                f"Conversation with id '{shown}' not found.", param=param, code="conversation_not_found"
            )
        return NotFound(f"Conversation with id '{shown}' not found.")

    return held_by(runtime, ids.decode_conversation(signing_key, owner, conversation_id), shown, param, missing)


def held_by(
    runtime: RuntimeConfig,
    ref: ids.ResponseRef | None,
    shown: str,
    param: str | None,
    missing: Callable[[], GatewayError],
) -> tuple[DeploymentRuntime, str]:
    """The deployment and upstream id of a decoded id (response or conversation); ``missing`` when
    it did not decode (forged, or another owner's), 404 when its deployment left the config."""
    if ref is None:
        raise missing()
    name, _, member = ref.deployment.partition("@")
    dep = runtime.deployments.get(name)
    if dep is None:
        raise NotFound(f"'{shown}' is held by deployment '{name}', which is no longer configured.", param=param)
    if member:  # one server of a pool holds it: the call is pinned to that server (health_key)
        dep = replace(dep, member=member, health_key=ref.deployment)
    return dep, ref.upstream_id


def upstream_value(sent: Any, upstream_id: str) -> Any:
    """The ``conversation`` field for the upstream: the client's shape with the upstream id."""
    return {**sent, "id": upstream_id} if isinstance(sent, dict) else upstream_id
