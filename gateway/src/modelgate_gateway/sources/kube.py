"""Config source watching the gateway's ConfigMap (and Secret) through the Kubernetes API.

The fast path from ``kubectl apply`` to every gateway pod: a mounted ConfigMap can take a minute
to be refreshed by the kubelet, a watch delivers the change in milliseconds. Speaks plain HTTP
with aiohttp and the pod's service-account token; never imports kopf or kubernetes. Lists and
watches each object with ``fieldSelector=metadata.name=…`` so a resourceNames-restricted Role
suffices. When the ConfigMap holds a config index (a sharded config), the objects it names are
followed too, and a snapshot is made only from a complete set that matches the index by hash
(:mod:`modelgate_gateway.config.sharding`): a half-written set is never applied. Never raises
for bad content: it logs and waits for the next change. Neighbour: :mod:`.base`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import json
import logging
import os
import random
import ssl
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import aiohttp

from ..config.sharding import INDEX_KEY, ConfigIndex, Inconsistent, IndexUnreadable, assemble
from .base import ConfigSnapshot

logger = logging.getLogger("modelgate_gateway.sources.kube")

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
State = Mapping[str, Any] | None
"""The watched object as last seen, or None when it does not exist."""
Watched = tuple[str, str]
"""(plural, name) of a followed object; ConfigMaps live in the ConfigMap's namespace, Secrets in
the Secret's."""
KEYS_GRACE_SECONDS = 30.0
"""How long a ``secretKey`` the config needs may be missing from the watched Secrets before the
document counts as rejected: the operator writes keys before the config that needs them, but the
two arrive on separate watches (milliseconds apart; 30 s covers a slow API server)."""


class _ApiError(ValueError):
    """The API server answered with a status we cannot use; reconnect after a backoff."""


def _split_ref(ref: str, what: str) -> tuple[str, str]:
    namespace, sep, name = ref.partition("/")
    if not sep or not namespace or not name or "/" in name:
        raise ValueError(f"{what}: expected 'namespace/name', got {ref!r}")
    return namespace, name


@dataclass(frozen=True, slots=True)
class WatchTiming:
    """Timeouts and backoff of the watch loop, in seconds."""

    request_timeout: float = 10.0
    """Connect and list timeout; the API server is close, so 10 s means it is in trouble."""
    watch_seconds: int = 290
    """Server-side watch timeout: the watch is renewed (relist) at least this often."""
    backoff_initial: float = 0.2
    """First reconnect delay: a restarted API server is usually back quickly."""
    backoff_max: float = 10.0
    """Reconnect delays double up to this bound, so a long outage costs little load."""


async def stop_watches(watches: dict[Any, asyncio.Task[None]]) -> None:
    """Cancel every watch task and wait for each to end."""
    tasks = list(watches.values())
    watches.clear()
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def watch_events(
    session: aiohttp.ClientSession,
    url: str,
    selector: tuple[str, str],
    version: str | None,
    timing: WatchTiming,
    headers: Mapping[str, str],
) -> AsyncIterator[Mapping[str, Any]]:
    """The events of one watch request (``selector``: a field or label selector parameter and its
    value; ``version``: the resourceVersion of the list before), until the server ends it; raises
    ``ValueError`` on a status other than 200 (the caller relists after a backoff)."""
    params = {
        "watch": "true",
        selector[0]: selector[1],
        "allowWatchBookmarks": "true",
        "timeoutSeconds": str(timing.watch_seconds),
    }
    if version:
        params["resourceVersion"] = version
    timeout = aiohttp.ClientTimeout(
        total=None, sock_connect=timing.request_timeout, sock_read=timing.watch_seconds + 30
    )
    async with session.get(url, params=params, timeout=timeout, headers=headers) as response:
        if response.status != 200:
            raise _ApiError(f"watch: HTTP {response.status}")
        buffer = b""
        # Own line splitting: a ConfigMap event can exceed aiohttp's readline limit.
        async for chunk in response.content.iter_any():
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                if line.strip():
                    yield json.loads(line)


def in_cluster_connection() -> tuple[str, Callable[[], str], ssl.SSLContext]:
    """Server, token and TLS of the API from inside a pod: the address from the environment, the
    service account's CA and token (the token file is re-read on every reconnect, since projected
    tokens rotate)."""
    host = os.environ["KUBERNETES_SERVICE_HOST"]
    port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
    if ":" in host:
        host = f"[{host}]"  # IPv6
    context = ssl.create_default_context(cafile=str(SERVICE_ACCOUNT_DIR / "ca.crt"))
    token_path = SERVICE_ACCOUNT_DIR / "token"
    return f"https://{host}:{port}", lambda: token_path.read_text().strip(), context


class KubeSource:
    """Yields a :class:`ConfigSnapshot` first and on every change of the ConfigMap or Secret."""

    def __init__(
        self,
        server: str,
        token: str | Callable[[], str] | None,
        configmap: str,
        key: str = "config.json",
        secret: str | None = None,
        *,
        ssl_context: ssl.SSLContext | None = None,
        timing: WatchTiming | None = None,
    ) -> None:
        self.server = server.rstrip("/")
        self._token = token
        self.configmap = _split_ref(configmap, "configmap")
        self.secret = _split_ref(secret, "secret") if secret else None
        self.key = key
        self.ssl_context = ssl_context
        self.timing = timing or WatchTiming()
        self._states: dict[Watched, State] = {}
        self._watches: dict[Watched, asyncio.Task[None]] = {}
        self._changed = asyncio.Event()
        self._assembled: tuple[str, bytes] | None = None
        """(index text, document) of the last set assembled: the same index means the same
        document once its parts are verified."""
        self._waiting: str | None = None
        self._parsed: tuple[str, ConfigIndex] | None = None

    @classmethod
    def in_cluster(
        cls, configmap: str, key: str = "config.json", secret: str | None = None, timing: WatchTiming | None = None
    ) -> KubeSource:
        """From inside a pod (:func:`in_cluster_connection`)."""
        server, token, context = in_cluster_connection()
        return cls(server, token, configmap, key, secret, ssl_context=context, timing=timing)

    @property
    def token(self) -> str | Callable[[], str] | None:
        return self._token

    @property
    def origin(self) -> str:
        return f"configmap {self.configmap[0]}/{self.configmap[1]}"

    async def report_applied(self, checksum: str) -> None:
        """No-op: the operator reads the applied checksum from the gateway's /readyz."""

    def wake(self) -> None:
        """No-op: the watch delivers every change as it happens."""

    def _headers(self) -> dict[str, str]:
        token = self._token() if callable(self._token) else self._token
        return {"Authorization": f"Bearer {token}"} if token else {}

    async def snapshots(self) -> AsyncIterator[ConfigSnapshot]:
        # One connection per followed object: at most two per shard the operator may write.
        connector = aiohttp.TCPConnector(ssl=self.ssl_context if self.ssl_context else False, limit=0)
        async with aiohttp.ClientSession(connector=connector) as session:
            try:
                self._follow(session)
                last: ConfigSnapshot | None = None
                while True:
                    await self._changed.wait()
                    self._changed.clear()
                    self._follow(session)
                    if any(key not in self._states for key in self._watches):
                        continue  # wait until every followed object was listed once
                    # Assembling and decoding a large set takes a while: off the event loop, on
                    # a copy (the watches keep replacing states meanwhile, never mutating one).
                    snapshot = await asyncio.to_thread(self._snapshot, dict(self._states), sorted(self._watches))
                    if snapshot is not None and snapshot != last:
                        last = snapshot
                        yield snapshot
            finally:
                await stop_watches(self._watches)

    def _index(self, states: Mapping[Watched, State]) -> ConfigIndex | None:
        """The index in the ConfigMap, if it holds one (a sharded or index-carrying config)."""
        data = (states.get(("configmaps", self.configmap[1])) or {}).get("data") or {}
        raw = data.get(INDEX_KEY)
        if not isinstance(raw, str):
            return None
        if self._parsed is None or self._parsed[0] != raw:
            try:
                self._parsed = (raw, ConfigIndex.parse(raw))
            except IndexUnreadable as exc:
                self._wait(f"{self.origin}: {exc}")
                return None
        return self._parsed[1]

    def _wanted(self) -> set[Watched]:
        wanted = {("configmaps", self.configmap[1])}
        index = self._index(self._states)
        if index is not None:
            wanted |= {("configmaps", part.object) for part in index.parts}
        if self.secret is not None:
            names = index.secrets if index is not None and index.secrets else (self.secret[1],)
            wanted |= {("secrets", name) for name in names}
        return wanted

    def _follow(self, session: aiohttp.ClientSession) -> None:
        """Watch what the index names now; stop watching (and forget) what it no longer names."""
        wanted = self._wanted()
        for key in [k for k in self._watches if k not in wanted]:
            self._watches.pop(key).cancel()
            self._states.pop(key, None)
        for key in wanted - set(self._watches):
            self._watches[key] = asyncio.create_task(self._watch(session, *key))

    def _wait(self, why: str) -> None:
        """Log once per distinct reason why no snapshot can be made yet."""
        if why != self._waiting:
            logger.info("waiting for a complete config set (keeping the last good one): %s", why)
            self._waiting = why

    def _document(
        self, states: Mapping[Watched, State], data: Mapping[str, Any], index: ConfigIndex | None
    ) -> bytes | None:
        if index is None:
            document = data.get(self.key)
            if not isinstance(document, str):
                logger.warning("%s has no key %r; waiting for the next change", self.origin, self.key)
                return None
            return document.encode()
        parts: dict[str, bytes | None] = {}
        for part in index.parts:
            found = ((states.get(("configmaps", part.object)) or {}).get("data") or {}).get(part.key)
            parts[part.key] = found.encode() if isinstance(found, str) else None
        raw = str(data[INDEX_KEY])
        try:
            if self._assembled is not None and self._assembled[0] == raw:
                for part in index.parts:  # same index: the parts only need to match their hashes
                    if hashlib.sha256(parts[part.key] or b"").hexdigest() != part.sha256:
                        raise Inconsistent(f"{part.object} ({part.key}) does not match the index yet")
            else:
                self._assembled = (raw, assemble(index, parts))
        except Inconsistent as exc:
            self._wait(f"generation {index.generation}: {exc}")
            return None
        self._waiting = None
        return self._assembled[1]

    def _snapshot(self, states: Mapping[Watched, State], watched: list[Watched]) -> ConfigSnapshot | None:
        configmap = states.get(("configmaps", self.configmap[1]))
        if configmap is None:
            return None  # not rendered yet: no snapshot, the gateway stays not ready
        data = configmap.get("data") or {}
        index = self._index(states)
        if index is None and INDEX_KEY in data:
            return None  # an unreadable index: wait for the next one
        document = self._document(states, data, index)
        if document is None:
            return None
        secrets: dict[str, bytes] = {}
        for plural, name in watched:
            if plural != "secrets":
                continue
            for key, value in ((states.get((plural, name)) or {}).get("data") or {}).items():
                try:
                    secrets[key] = base64.b64decode(value, validate=True)
                except (binascii.Error, TypeError, ValueError):
                    logger.warning("secret key %r is not valid base64; left out", key)
        fmt: Literal["json", "yaml"] = "yaml" if self.key.endswith((".yaml", ".yml")) else "json"
        return ConfigSnapshot(
            document=document,
            fmt="json" if index is not None else fmt,
            origin=self.origin,
            secrets=secrets,
            keys_grace_seconds=KEYS_GRACE_SECONDS,
        )

    def _set(self, key: Watched, state: State) -> None:
        if key not in self._states or self._states[key] != state:
            self._states[key] = state
            self._changed.set()

    async def _watch(self, session: aiohttp.ClientSession, plural: str, name: str) -> None:
        """List then watch one object, forever; reconnect with bounded exponential backoff."""
        namespace = self.secret[0] if plural == "secrets" and self.secret else self.configmap[0]
        url = f"{self.server}/api/v1/namespaces/{namespace}/{plural}"
        selector = f"metadata.name={name}"
        backoff = self.timing.backoff_initial
        while True:
            try:
                version = await self._list(session, url, selector, plural, name)
                backoff = self.timing.backoff_initial
                await self._stream(session, url, selector, version, plural, name)
            except (aiohttp.ClientError, TimeoutError, ValueError, _ApiError) as exc:
                delay = backoff * (1 + random.random() / 2)  # jitter: replicas spread out
                logger.warning("watching %s %s/%s failed (%s); retrying in %.1fs", plural, namespace, name, exc, delay)
                await asyncio.sleep(delay)
                backoff = min(backoff * 2, self.timing.backoff_max)

    async def _list(
        self, session: aiohttp.ClientSession, url: str, selector: str, plural: str, name: str
    ) -> str | None:
        timeout = aiohttp.ClientTimeout(total=self.timing.request_timeout)
        async with session.get(
            url, params={"fieldSelector": selector}, timeout=timeout, headers=self._headers()
        ) as response:
            if response.status != 200:
                raise _ApiError(f"list: HTTP {response.status}")
            body = await response.json()
        # The selector is a request; the name is checked here too.
        items = [i for i in body.get("items") or [] if (i.get("metadata") or {}).get("name") == name]
        self._set((plural, name), items[0] if items else None)
        version = (body.get("metadata") or {}).get("resourceVersion")
        return version if isinstance(version, str) and version.isdigit() else None

    async def _stream(
        self, session: aiohttp.ClientSession, url: str, selector: str, version: str | None, plural: str, name: str
    ) -> None:
        selected = ("fieldSelector", selector)
        async for event in watch_events(session, url, selected, version, self.timing, self._headers()):
            if not self._event(event, plural, name):
                return  # the server ended this watch (e.g. 410 Gone): relist

    def _event(self, event: Mapping[str, Any], plural: str, name: str) -> bool:
        kind = event.get("type")
        obj = event.get("object") or {}
        if kind == "ERROR":
            logger.info("watch of %s/%s ended by the server: %s", plural, name, obj.get("message"))
            return False
        if kind == "BOOKMARK" or (obj.get("metadata") or {}).get("name") != name:
            return True
        self._set((plural, name), None if kind == "DELETED" else obj)
        return True
