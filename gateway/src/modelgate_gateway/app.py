"""The aiohttp application: routes, shared state, and the reloader's lifetime.

``make_app`` is what tests call directly; ``main`` adds sockets, signals and the metrics port.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import AbstractAsyncContextManager
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry

from .appkeys import STATE
from .appstate import GatewayState
from .governance.governor import Governor
from .handlers import background, conversations, create, derived, health, models, stored, websocket
from .handlers.endpoint import not_found
from .http1 import Http1Client
from .observability.exposition import metrics_app
from .observability.governance_metrics import GovernanceMetrics
from .observability.observer import GatewayObserver
from .observability.recording import Observer
from .reloading import Reloader, ReloadListener
from .sources.base import ConfigSource
from .sources.endpointslices import EndpointSliceFollower
from .state.background import BackgroundTracker
from .state.holder import StoreHolder
from .upstream.balancingmetrics import BalancingCollector
from .upstream.chat_transport import ChatTransport
from .upstream.loadreading import LoadReader
from .upstream.mock import MockTransport
from .upstream.transport import HttpTransport

RELOADER: web.AppKey[Reloader] = web.AppKey("modelgate_reloader")
SOCKETS_CLOSE_SECONDS = 1.0
"""At shutdown: time client WebSockets get to finish their closing handshake."""


def make_state(observer: Observer, registry: CollectorRegistry | None = None) -> GatewayState:
    """``registry``: where the governance metrics go (the observer's registry)."""
    pools = Http1Client()
    stores = StoreHolder()
    governor = Governor(GovernanceMetrics(registry) if registry is not None else None)
    holder: list[GatewayState] = []
    tracker = BackgroundTracker(
        observer, background.ledger_source(stores), lambda: background.follow_up_settings(holder[0].runtime)
    )
    state = GatewayState(
        observer=observer,
        pools=pools,
        http=HttpTransport(pools),
        mock=MockTransport(),
        chat=ChatTransport(pools, stores),
        stores=stores,
        governor=governor,
        background=tracker,
    )
    holder.append(state)
    if registry is not None:
        registry.register(BalancingCollector(lambda: state.runtime, state.board, state.servers))
    tracker.fetch = background.upstream_fetch(state)
    tracker.on_counted = background.limits_correction(governor)
    if isinstance(observer, GatewayObserver):
        observer.metrics.background_pending.set_function(lambda: tracker.following)
        observer.metrics.websocket_connections.set_function(lambda: len(state.sockets))
    return state


def _routes(app: web.Application) -> None:
    for prefix in ("/v1", ""):
        app.router.add_post(f"{prefix}/responses", create.create_response)
        app.router.add_get(f"{prefix}/responses", websocket.responses_socket)
        app.router.add_post(f"{prefix}/responses/input_tokens", derived.count_input_tokens)
        app.router.add_post(f"{prefix}/responses/compact", derived.compact_response)
        app.router.add_get(f"{prefix}/responses/{{response_id}}", stored.retrieve_response)
        app.router.add_delete(f"{prefix}/responses/{{response_id}}", stored.delete_response)
        app.router.add_post(f"{prefix}/responses/{{response_id}}/cancel", stored.cancel_response)
        app.router.add_get(f"{prefix}/responses/{{response_id}}/input_items", stored.list_input_items)
        app.router.add_get(f"{prefix}/models", models.list_models)
        conversations.add_routes(app, prefix)
    app.router.add_get("/healthz", health.healthz)
    app.router.add_get("/readyz", health.readyz)
    app.router.add_route("*", "/{tail:.*}", not_found)


def metrics_port_app(registry: CollectorRegistry, state: GatewayState) -> web.Application:
    """The metrics port: ``/metrics``, and ``/healthz`` / ``/readyz`` as on the client port.

    The health endpoints are here too because a sidecar's client port listens on 127.0.0.1 only,
    where neither the kubelet's probes nor the operator's rollout check can reach it: they use
    this port on the pod IP.
    """
    app = metrics_app(registry)
    app[STATE] = state
    app.router.add_get("/healthz", health.healthz)
    app.router.add_get("/readyz", health.readyz)
    return app


def make_app(
    state: GatewayState,
    source: ConfigSource | None = None,
    listener: ReloadListener | None = None,
    reload_interval_seconds: float = 2.0,
    *,
    endpoint_slices: EndpointSliceFollower | None = None,
) -> web.Application:
    """``endpoint_slices``: follows the Services of ``serviceRef`` pools (None outside Kubernetes)."""
    app = web.Application()
    app[STATE] = state
    _routes(app)
    if endpoint_slices is not None:
        endpoint_slices.on_change = state.servers.discovered
        state.servers.on_services = endpoint_slices.follow
        app.cleanup_ctx.append(_background(endpoint_slices.run, "modelgate-endpointslices"))
    app.cleanup_ctx.append(_background(LoadReader(state.servers, state.board).run, "modelgate-load-reading"))
    if source is not None:
        app[RELOADER] = Reloader(state, source, listener, reload_interval_seconds)
        app.cleanup_ctx.append(_run_reloader)
    app.on_shutdown.append(_start_draining)
    app.cleanup_ctx.append(_close_pools)
    app.cleanup_ctx.append(_follow_background)
    return app


async def _follow_background(app: web.Application) -> AsyncIterator[None]:
    """Adopt orphaned background responses while serving; hand ours back on the way out."""
    tracker = app[STATE].background
    task = asyncio.create_task(tracker.run(), name="modelgate-background-sweep")
    yield
    tracker.stop()  # ends the sweep even if a cancellation below were swallowed (see BackgroundTracker.run)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await tracker.close()


def _background(
    run: Callable[[], Coroutine[Any, Any, None]], name: str
) -> Callable[[web.Application], AbstractAsyncContextManager[None]]:
    """A cleanup context running ``run`` for the app's lifetime."""

    @contextlib.asynccontextmanager
    async def context(_app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(run(), name=name)
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    return context


async def _run_reloader(app: web.Application) -> AsyncIterator[None]:
    task = asyncio.create_task(app[RELOADER].run(), name="modelgate-reloader")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _start_draining(app: web.Application) -> None:
    """aiohttp's shutdown: no new request; client WebSockets close with 1001 (their turns have ended or
    been cut by the drain, see server/draining.py) before aiohttp's own clean-up would cut them."""
    state = app[STATE]
    state.draining = True
    state.sockets.drain()
    await state.sockets.wait_closed(SOCKETS_CLOSE_SECONDS)


async def _close_pools(app: web.Application) -> AsyncIterator[None]:
    yield
    await app[STATE].pools.close()
    await app[STATE].stores.close()
    await app[STATE].governor.close()
