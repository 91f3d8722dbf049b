"""Load, validate and compile each new config snapshot; swap it in or keep the last good one.

A bad document (or one whose secrets cannot be resolved) is logged once and counted, and the
gateway keeps serving the previous snapshot. In-flight requests keep the snapshot they started
with; only the reference on the state object changes.

A valid document that names ``secretKey`` entries the secret store does not hold *yet* is not a
bad document when its source delivers the config and the store separately (two watches, two
mounted volumes): the operator writes keys before the config that needs them, but they may
arrive in either order. Such a document waits (the last good config keeps serving, nothing is
counted) until a snapshot brings the keys, or until the source's grace period ends; only then
does it count as rejected, so a key that really is missing still raises the alert.
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
from .config import ConfigError, FileRef, GatewayConfig, SecretKeyRef, parse_config
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


class MissingKeys(ConfigError):
    """A valid document naming ``secretKey`` entries the snapshot's secret store lacks."""

    def __init__(self, missing: list[tuple[str, str]], source: str) -> None:
        super().__init__(
            [f"{where}: key {key!r} is not in the gateway's secret store" for where, key in missing], source
        )
        self.keys = sorted({key for _, key in missing})


def referenced_secret_keys(config: GatewayConfig) -> list[tuple[str, str]]:
    """(path, key) of every ``{secretKey: …}`` reference of the document."""
    spec = config.spec
    refs = [(f"spec.deployments[{i}].credentials", d.credentials) for i, d in enumerate(spec.deployments)]
    refs += [(f"spec.auth.keys[{i}].valueFrom", k.value_from) for i, k in enumerate(spec.auth.keys)]
    refs += [
        ("spec.responseIds.signingKey", spec.response_ids.signing_key),
        ("spec.state.redisPassword", spec.state.redis_password),
    ]
    return [(where, ref.secret_key) for where, ref in refs if isinstance(ref, SecretKeyRef)]


def compile_snapshot(snapshot: ConfigSnapshot) -> RuntimeConfig:
    config = parse_config(snapshot.document, snapshot.fmt, snapshot.origin)
    missing = [(where, key) for where, key in referenced_secret_keys(config) if key not in snapshot.secrets]
    if missing:
        raise MissingKeys(missing, snapshot.origin)
    try:
        return compile_runtime(config, snapshot.secrets, snapshot.base_dir)
    except ConfigError as exc:
        raise ConfigError(exc.errors, snapshot.origin) from None


class Reloader:
    def __init__(
        self,
        state: GatewayState,
        source: ConfigSource,
        listener: ReloadListener | None,
        refs_interval_seconds: float = 2.0,
    ) -> None:
        self.state = state
        self.source = source
        self.listener = listener
        self.refs_interval = refs_interval_seconds
        self._last: ConfigSnapshot | None = None
        self._waiting: tuple[ConfigSnapshot, float, asyncio.Task[None]] | None = None
        """A document waiting for its keys: the snapshot, its deadline, the task that gives up."""
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
            self._stop_waiting()
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher

    async def _watch_referenced_files(self) -> None:
        """Re-apply the current document when a file it references changes (a rotated or revoked
        API key in a mounted Secret), which no config source would otherwise notice."""
        while True:  # for the life of the reloader; one small read per referenced file per period
            with contextlib.suppress(TimeoutError):  # asyncio.timeout, not wait_for: see sources.files._pause
                async with asyncio.timeout(self.refs_interval):
                    await self._refs_woken.wait()
            self._refs_woken.clear()
            if self._last is None or not self._refs:
                continue
            current = await asyncio.to_thread(files_fingerprint, self._refs)
            if current != self._refs_fingerprint:
                log.info("a secret file referenced by the config changed; re-applying it")
                await self.apply(self._waiting[0] if self._waiting else self._last)

    @staticmethod
    def _compile(snapshot: ConfigSnapshot) -> tuple[RuntimeConfig, tuple[Path, ...], bytes]:
        runtime = compile_snapshot(snapshot)
        refs = referenced_files(runtime.config, snapshot.base_dir)
        return runtime, refs, files_fingerprint(refs)

    def _stop_waiting(self) -> float | None:
        """Forget a document waiting for keys; returns its deadline, if there was one."""
        if self._waiting is None:
            return None
        _, deadline, task = self._waiting
        self._waiting = None
        task.cancel()
        return deadline

    def _reject(self, snapshot: ConfigSnapshot, exc: ConfigError, note: str = "") -> None:
        kept = "keeping the last good config" if self.state.runtime else "no config loaded yet"
        log.error("rejected config from %s (%s): %s%s", snapshot.origin, kept, "; ".join(exc.errors), note)
        if self.listener is not None:
            self.listener.config_failed(str(exc))

    def _wait_for_keys(self, snapshot: ConfigSnapshot, exc: MissingKeys, deadline: float | None) -> None:
        """Keep the last good config until a snapshot brings the keys or the grace period ends.

        A new snapshot of the same document (another change of the store) keeps the deadline,
        so a store that keeps changing cannot postpone the verdict forever.
        """
        loop = asyncio.get_running_loop()
        if deadline is None:
            deadline = loop.time() + snapshot.keys_grace_seconds
            shown = ", ".join(map(repr, exc.keys[:5])) + (f" and {len(exc.keys) - 5} more" if len(exc.keys) > 5 else "")
            log.warning(
                "config from %s names keys the secret store does not hold yet: %s; keeping "
                "the last good config and waiting up to %.0fs for them",
                snapshot.origin,
                shown,
                snapshot.keys_grace_seconds,
            )

        async def give_up() -> None:
            await asyncio.sleep(max(0.0, deadline - loop.time()))
            self._waiting = None
            self._reject(snapshot, exc, f" (waited {snapshot.keys_grace_seconds:.0f}s for the keys)")

        self._waiting = (snapshot, deadline, asyncio.create_task(give_up()))

    async def apply(self, snapshot: ConfigSnapshot) -> bool:
        waiting = self._waiting[0] if self._waiting else None
        deadline = self._stop_waiting()
        if waiting is None or waiting.document != snapshot.document:
            deadline = None
        try:
            # Parsing a large document takes milliseconds: keep it off the event loop.
            runtime, refs, fingerprint = await asyncio.to_thread(self._compile, snapshot)
        except MissingKeys as exc:
            if snapshot.keys_grace_seconds > 0:
                self._wait_for_keys(snapshot, exc, deadline)
            else:
                self._reject(snapshot, exc)
            return False
        except ConfigError as exc:
            self._reject(snapshot, exc)
            return False
        self._last, self._refs, self._refs_fingerprint = snapshot, refs, fingerprint
        previous = self.state.runtime
        await self.state.stores.configure(runtime.redis_url, runtime.redis_password, runtime.state_ttl_seconds)
        await self.state.governor.configure(runtime)
        self.state.runtime = runtime
        self.state.servers.sync(runtime)
        self.state.retire_unused()
        self.state.board.limit_deferrals(runtime.retry_after_caps, time.monotonic())
        if previous is None or previous.checksum != runtime.checksum:
            log.info(
                "applied config %s from %s (%d models, %d deployments)",
                runtime.checksum,
                snapshot.origin,
                len(runtime.models),
                len(runtime.deployments),
            )
        if self.listener is not None:
            self.listener.config_loaded(runtime.config, runtime.checksum)
        self.loaded.set()
        await self.source.report_applied(runtime.checksum)
        return True
