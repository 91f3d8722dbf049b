"""Everything one gateway process shares between requests, hung on the app under one key.

The current :class:`RuntimeConfig` is replaced as a whole by the reloader; a request reads it
once at its start and keeps that snapshot, so a reload never changes a request half-way.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass, field

from .config import Provider, UpstreamApi
from .errors import NotReady
from .governance.governor import Governor
from .http1 import Http1Client
from .observability.recording import Observer
from .runtime import DeploymentRuntime, RuntimeConfig
from .server.draining import InFlight
from .server.sockets import OpenSockets
from .state.background import BackgroundTracker
from .state.holder import StoreHolder
from .upstream.balancing import HealthBoard
from .upstream.pools import PoolBoard
from .upstream.transport import Transport


@dataclass(eq=False)
class GatewayState:
    observer: Observer
    pools: Http1Client
    """Keep-alive connection pools to the upstreams, one per deployment and origin."""
    http: Transport
    mock: Transport
    chat: Transport
    stores: StoreHolder
    background: BackgroundTracker
    """Follows background responses up and counts each once (see state/background.py)."""
    runtime: RuntimeConfig | None = None
    board: HealthBoard = field(default_factory=HealthBoard)
    rng: random.Random = field(default_factory=random.Random)
    draining: bool = False
    inflight: InFlight = field(default_factory=InFlight)
    """Requests being handled: the drain waits for them and cuts what is left at its end."""
    sockets: OpenSockets = field(default_factory=OpenSockets)
    """Client WebSockets (the Responses API's WebSocket mode): counted per key, closed by the drain."""
    governor: Governor = field(default_factory=Governor)
    """Budgets and rate limits of keys and tenants (see :mod:`.governance`)."""
    ephemeral_signing_key: bytes = field(default_factory=lambda: os.urandom(32))
    """Used when the config names no signing key: ids then only work within this process."""
    servers: PoolBoard = field(default_factory=PoolBoard)
    """The servers of pool deployments (baseUrls, serviceRef), as they come and go."""

    def __post_init__(self) -> None:
        self.servers.on_change = self.retire_unused

    def retire_unused(self) -> None:
        """After a reload or a change of a pool's servers: close the connection pools nothing uses
        any more (after in-flight answers had time to finish), forget the health of what left."""
        runtime = self.runtime
        if runtime is None:
            return
        keep = {d.pool_key for d in runtime.deployments.values()} | self.servers.connection_keys()
        grace = max((d.total_seconds for d in runtime.deployments.values()), default=60.0)
        self.pools.retire(keep, grace)
        self.board.prune([*runtime.deployments, *self.servers.health_keys()])

    def current(self) -> RuntimeConfig:
        runtime = self.runtime
        if runtime is None:
            raise NotReady("The gateway has no valid configuration loaded yet.")
        return runtime

    def signing_key(self, runtime: RuntimeConfig) -> bytes:
        return runtime.signing_key or self.ephemeral_signing_key

    def transport(self, dep: DeploymentRuntime) -> Transport:
        if dep.provider is Provider.MOCK:
            return self.mock
        if dep.api is UpstreamApi.CHAT_COMPLETIONS:
            return self.chat
        return self.http
