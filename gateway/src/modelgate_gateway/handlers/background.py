"""Where background responses meet the handlers: tracked after their create, settled when a poll sees their end.

The create handler hands every ``background: true`` create to :func:`after_create` (which records
it for follow-up, and counts it at once if its own stream already carried it to the end); the
follow-up handlers (retrieve, stream-retrieve, cancel) hand what they relayed to
:func:`after_follow_up`. :func:`upstream_fetch` is how the tracker asks the upstream itself. All
the counting rules live in :mod:`..state.background`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import orjson

from .. import ids
from ..appstate import GatewayState
from ..config import BackgroundFollowUp
from ..governance.governor import Governor
from ..observability.recording import AttemptOutcome, RequestRecord, Usage
from ..runtime import RuntimeConfig
from ..state.background import Counted, Fetch, Pending
from ..state.holder import StoreHolder
from ..state.ledger import BackgroundLedger, MemoryLedger, RedisLedger
from ..upstream.executor import Call, PassThrough, open_call
from ..upstream.pools import ServerGone

if TYPE_CHECKING:  # redis is imported only by a gateway that names a store
    from ..state.redis_store import RedisConversationStore


def after_create(
    state: GatewayState,
    record: RequestRecord,
    signing_key: bytes,
    owner: bytes,
    accept_unowned: bool,
    charged: dict[str, Any] | None = None,
) -> None:
    """A background create was answered: follow the response up (and count it now if it already ended).

    ``charged``: what the governor charged the key's and tenant's limits for the create (a limited
    key only); the follow-up corrects it to the final usage.
    """
    tracker = state.background
    if record.response_id is None or not 200 <= record.status < 300:
        return
    ref = ids.decode(signing_key, owner, record.response_id, accept_unowned=accept_unowned)
    if ref is None:
        return
    now = time.time()
    deadline = state.current().config.spec.observability.background_follow_up.deadline_seconds
    pending = Pending(
        deployment=ref.deployment,
        upstream_id=ref.upstream_id,
        response_id=record.response_id,
        request_id=record.request_id,
        model=record.model,
        key_name=record.key_name,
        end_user=record.end_user,
        created=now,
        deadline=now + deadline,
        charged=charged,
    )
    final = record.final  # ended already: a stream carried it to its end, or an upstream that ran it at once
    tracker.submit(_track(state, pending, final))


async def _track(state: GatewayState, pending: Pending, final: dict[str, Any] | None) -> None:
    await state.background.track(pending)
    if final is not None:  # settle() counts it only if it is terminal
        await state.background.settle(pending.deployment, pending.upstream_id, final, "create")


def after_follow_up(state: GatewayState, record: RequestRecord, deployment: str, upstream_id: str) -> None:
    """A retrieve or cancel relayed a response: if it is a background one that ended, count it (once)."""
    if record.usage is None or record.status != 200:
        return  # an unfinished response has no usage yet
    final = record.final
    if final is None or final.get("background") is not True:
        return
    state.background.submit(state.background.settle(deployment, upstream_id, final, "poll"))


def limits_correction(governor: Governor) -> Counted:
    """How a counted background response reaches the budgets: its create's charge becomes its usage."""

    def counted(pending: Pending, usage: Usage | None) -> None:
        if pending.charged is not None:
            governor.settle_background(pending.charged, usage, pending.model, pending.deployment)

    return counted


def upstream_fetch(state: GatewayState) -> Fetch:
    """The tracker's way to ask the deployment holding a response for it (``GET /responses/{id}``)."""

    async def fetch(pending: Pending) -> dict[str, Any] | None:
        runtime = state.current()
        dep = runtime.deployments.get(pending.deployment.partition("@")[0])  # name@member: a pool's server
        if dep is None:
            return None  # the deployment is gone from the config: so is the response, for us
        record = RequestRecord(
            request_id=f"bg_{pending.request_id}",
            started_at=time.monotonic(),
            wall_time=time.time(),
            method="GET",
            route="follow_up",
        )
        call = Call("GET", f"/responses/{quote(pending.upstream_id, safe='')}", pinned=pending.deployment)
        try:
            opened = await open_call(state, runtime, record, None, call)
        except ServerGone:
            return None  # the server that held it left its pool: so did the response
        except PassThrough as exc:
            if exc.status == 404:
                return None
            raise
        reply = opened.reply
        try:
            async with asyncio.timeout(max(0.0, opened.deadline - time.monotonic())):
                body = await reply.read()
        except BaseException:
            reply.close()
            opened.finish(AttemptOutcome.STREAM_ERROR)
            raise
        reply.release()
        opened.finish(AttemptOutcome.SUCCESS)
        data = orjson.loads(body)
        if not isinstance(data, dict):
            raise ValueError("the upstream answered something that is not a response object")
        return data

    return fetch


def ledger_source(stores: StoreHolder) -> Callable[[], BackgroundLedger]:
    """The ledger to use now: in the configured Redis, else in this process."""
    memory = MemoryLedger()
    current: list[tuple[RedisConversationStore, RedisLedger]] = []

    def ledger() -> BackgroundLedger:
        store = stores.store
        if store is None:
            return memory
        if not current or current[0][0] is not store:
            current[:] = [(store, RedisLedger(store.client))]
        return current[0][1]

    return ledger


def follow_up_settings(runtime: RuntimeConfig | None) -> BackgroundFollowUp | None:
    """The follow-up settings of the loaded config; None before the first one loaded."""
    return runtime.config.spec.observability.background_follow_up if runtime is not None else None
