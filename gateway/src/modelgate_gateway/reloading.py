"""Load, validate and compile each new config snapshot; swap it in or keep the last good one.

A bad document (or one whose secrets cannot be resolved) is logged once and counted, and the
gateway keeps serving the previous snapshot. In-flight requests keep the snapshot they started
with; only the reference on the state object changes.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from .appstate import GatewayState
from .config import ConfigError, GatewayConfig, parse_config
from .runtime import RuntimeConfig, compile_runtime
from .sources.base import ConfigSnapshot, ConfigSource

log = logging.getLogger("modelgate.gateway.reload")


class ReloadListener(Protocol):
    def config_loaded(self, config: GatewayConfig, checksum: str) -> None: ...

    def config_failed(self, reason: str) -> None: ...


def compile_snapshot(snapshot: ConfigSnapshot) -> RuntimeConfig:
    config = parse_config(snapshot.document, snapshot.fmt, snapshot.origin)
    try:
        return compile_runtime(config, snapshot.secrets, snapshot.base_dir)
    except ConfigError as exc:
        raise ConfigError(exc.errors, snapshot.origin) from None


class Reloader:
    def __init__(self, state: GatewayState, source: ConfigSource, listener: ReloadListener | None) -> None:
        self.state = state
        self.source = source
        self.listener = listener
        self.loaded = asyncio.Event()
        """Set after the first good config; tests and start-up wait on it."""

    async def run(self) -> None:
        async for snapshot in self.source.snapshots():
            await self.apply(snapshot)

    async def apply(self, snapshot: ConfigSnapshot) -> bool:
        try:
            # Parsing a large document takes milliseconds: keep it off the event loop.
            runtime = await asyncio.to_thread(compile_snapshot, snapshot)
        except ConfigError as exc:
            kept = "keeping the last good config" if self.state.runtime else "no config loaded yet"
            log.error("rejected config from %s (%s): %s", snapshot.origin, kept, "; ".join(exc.errors))
            if self.listener is not None:
                self.listener.config_failed(str(exc))
            return False
        previous = self.state.runtime
        await self.state.stores.configure(runtime.redis_url, runtime.redis_password, runtime.state_ttl_seconds)
        self.state.runtime = runtime
        pools = {d.pool_key for d in runtime.deployments.values()}
        grace = max((d.total_seconds for d in runtime.deployments.values()), default=60.0)
        self.state.pools.retire_unused(pools, grace)
        self.state.board.prune(runtime.deployments)
        if previous is None or previous.checksum != runtime.checksum:
            log.info("applied config %s from %s (%d models, %d deployments)", runtime.checksum,
                     snapshot.origin, len(runtime.models), len(runtime.deployments))
        if self.listener is not None:
            self.listener.config_loaded(runtime.config, runtime.checksum)
        self.loaded.set()
        await self.source.report_applied(runtime.checksum)
        return True
