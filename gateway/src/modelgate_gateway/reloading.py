"""Load, validate and compile each new config snapshot; swap it in or keep the last good one.

A bad document (or one whose secrets cannot be resolved) is logged once and counted, and the
gateway keeps serving the previous snapshot. In-flight requests keep the snapshot they started
with; only the reference on the state object changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from pathlib import Path
from typing import Protocol

from .appstate import GatewayState
from .config import ConfigError, FileRef, GatewayConfig, parse_config
from .runtime import RuntimeConfig, compile_runtime
from .sources.base import ConfigSnapshot, ConfigSource

log = logging.getLogger("modelgate.gateway.reload")
_MAX_REF_BYTES = 64 * 1024  # secret files are small; the runtime refuses bigger ones anyway


class ReloadListener(Protocol):
    def config_loaded(self, config: GatewayConfig, checksum: str) -> None: ...

    def config_failed(self, reason: str) -> None: ...


def referenced_files(config: GatewayConfig, base_dir: str) -> tuple[Path, ...]:
    """Files that ``{file: …}`` references of the document point to (API keys, signing key…)."""
    spec = config.spec
    refs = [d.credentials for d in spec.deployments] + [k.value_from for k in spec.auth.keys]
    refs += [spec.response_ids.signing_key, spec.state.redis_password]
    return tuple(sorted({Path(base_dir, r.file) for r in refs if isinstance(r, FileRef)}))


def files_fingerprint(paths: tuple[Path, ...]) -> bytes:
    digest = hashlib.sha256()
    for path in paths:
        try:
            digest.update(path.read_bytes()[:_MAX_REF_BYTES])
        except OSError:
            digest.update(b"\0missing")
        digest.update(b"\0" + str(path).encode())
    return digest.digest()


def compile_snapshot(snapshot: ConfigSnapshot) -> RuntimeConfig:
    config = parse_config(snapshot.document, snapshot.fmt, snapshot.origin)
    try:
        return compile_runtime(config, snapshot.secrets, snapshot.base_dir)
    except ConfigError as exc:
        raise ConfigError(exc.errors, snapshot.origin) from None


class Reloader:
    def __init__(self, state: GatewayState, source: ConfigSource, listener: ReloadListener | None,
                 refs_interval_seconds: float = 2.0) -> None:
        self.state = state
        self.source = source
        self.listener = listener
        self.refs_interval = refs_interval_seconds
        self._last: ConfigSnapshot | None = None
        self._refs: tuple[Path, ...] = ()
        self._refs_fingerprint = b""
        self.loaded = asyncio.Event()
        """Set after the first good config; tests and start-up wait on it."""
        self._refs_woken = asyncio.Event()

    def reload_now(self) -> None:
        """SIGHUP: read the config and the files it references now, not at the next poll."""
        self.source.wake()
        self._refs_woken.set()

    async def run(self) -> None:
        watcher = asyncio.create_task(self._watch_referenced_files())
        try:
            async for snapshot in self.source.snapshots():
                await self.apply(snapshot)
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher

    async def _watch_referenced_files(self) -> None:
        """Re-apply the current document when a file it references changes (a rotated or revoked
        API key in a mounted Secret), which no config source would otherwise notice."""
        while True:  # for the life of the reloader; one small read per referenced file per period
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._refs_woken.wait(), self.refs_interval)
            self._refs_woken.clear()
            if self._last is None or not self._refs:
                continue
            current = await asyncio.to_thread(files_fingerprint, self._refs)
            if current != self._refs_fingerprint:
                log.info("a secret file referenced by the config changed; re-applying it")
                await self.apply(self._last)

    @staticmethod
    def _compile(snapshot: ConfigSnapshot) -> tuple[RuntimeConfig, tuple[Path, ...], bytes]:
        runtime = compile_snapshot(snapshot)
        refs = referenced_files(runtime.config, snapshot.base_dir)
        return runtime, refs, files_fingerprint(refs)

    async def apply(self, snapshot: ConfigSnapshot) -> bool:
        try:
            # Parsing a large document takes milliseconds: keep it off the event loop.
            runtime, refs, fingerprint = await asyncio.to_thread(self._compile, snapshot)
        except ConfigError as exc:
            kept = "keeping the last good config" if self.state.runtime else "no config loaded yet"
            log.error("rejected config from %s (%s): %s", snapshot.origin, kept, "; ".join(exc.errors))
            if self.listener is not None:
                self.listener.config_failed(str(exc))
            return False
        self._last, self._refs, self._refs_fingerprint = snapshot, refs, fingerprint
        previous = self.state.runtime
        await self.state.stores.configure(runtime.redis_url, runtime.redis_password, runtime.state_ttl_seconds)
        self.state.runtime = runtime
        pools = {d.pool_key for d in runtime.deployments.values()}
        grace = max((d.total_seconds for d in runtime.deployments.values()), default=60.0)
        self.state.pools.retire(pools, grace)
        self.state.board.prune(runtime.deployments)
        self.state.board.limit_deferrals(runtime.retry_after_caps, time.monotonic())
        if previous is None or previous.checksum != runtime.checksum:
            log.info("applied config %s from %s (%d models, %d deployments)", runtime.checksum,
                     snapshot.origin, len(runtime.models), len(runtime.deployments))
        if self.listener is not None:
            self.listener.config_loaded(runtime.config, runtime.checksum)
        self.loaded.set()
        await self.source.report_applied(runtime.checksum)
        return True
