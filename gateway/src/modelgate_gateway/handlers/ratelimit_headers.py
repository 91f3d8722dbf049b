"""The x-ratelimit headers on every answer to a rate-limited key, not only on its creates.

OpenAI sends them on every answer, and SDKs and client libraries pace themselves on whichever
answer they saw last. A create carries the counts of its own admission; any other answer (a
retrieve, a delete, a cancel, input_items, models, conversations, and every error once the key is
known) carries the key's counts as they stand, read without reserving anything. Keys whose
requests and tokens per minute are not limited get none (nothing to show), at the cost of one
truth test per request.
"""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web

from ..appstate import GatewayState
from ..observability.recording import RequestRecord

_SHOWN = ("x-ratelimit-reset-requests", "x-ratelimit-reset-tokens")


def wanted(
    state: GatewayState,
    record: RequestRecord,
    response: web.StreamResponse | None,
    headers: Mapping[str, str] | None = None,
) -> bool:
    """Whether this answer (``response``, or an error's ``headers``) lacks the headers its key should
    get. The endpoint tests ``policy.rated`` first, so gateways without rate limits never call this."""
    if record.key_name not in state.governor.policy.rated:
        return False
    if response is not None:
        if response.prepared:  # sent already: a relay that streamed added them itself
            return False
        headers = response.headers
    return headers is not None and not any(name in headers for name in _SHOWN)


async def current(state: GatewayState, record: RequestRecord) -> dict[str, str]:
    """The headers of the request's key as its counters stand; empty for a key without rate limits."""
    key_policy = state.governor.policy.rated.get(record.key_name or "")
    if key_policy is None:
        return {}
    return await state.governor.current_headers(key_policy)
