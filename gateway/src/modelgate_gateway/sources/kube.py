"""Config source watching one ConfigMap (and optionally one Secret) through the Kubernetes API.

The fast path from ``kubectl apply`` to every gateway pod: a mounted ConfigMap can take a minute
to be refreshed by the kubelet, a watch delivers the change in milliseconds. Speaks plain HTTP
with aiohttp and the pod's service-account token; never imports kopf or kubernetes. Lists and
watches with ``fieldSelector=metadata.name=…`` so a resourceNames-restricted Role suffices.
Never raises for bad content: it logs and waits for the next change. Neighbour: :mod:`.base`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
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

from .base import ConfigSnapshot

logger = logging.getLogger("modelgate_gateway.sources.kube")

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
State = Mapping[str, Any] | None
"""The watched object as last seen, or None when it does not exist."""


class _ApiError(Exception):
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


class KubeSource:
    """Yields a :class:`ConfigSnapshot` first and on every change of the ConfigMap or Secret."""

    def __init__(self, server: str, token: str | Callable[[], str] | None, configmap: str,
                 key: str = "config.json", secret: str | None = None, *,
                 ssl_context: ssl.SSLContext | None = None,
                 timing: WatchTiming | None = None) -> None:
        self.server = server.rstrip("/")
        self._token = token
        self.configmap = _split_ref(configmap, "configmap")
        self.secret = _split_ref(secret, "secret") if secret else None
        self.key = key
        self.ssl_context = ssl_context
        self.timing = timing or WatchTiming()
        self._states: dict[str, State] = {}
        self._changed = asyncio.Event()

    @classmethod
    def in_cluster(cls, configmap: str, key: str = "config.json", secret: str | None = None,
                   timing: WatchTiming | None = None) -> KubeSource:
        """From inside a pod: API address from the environment, the service account's CA and
        token (the token file is re-read on every reconnect, since projected tokens rotate)."""
        host = os.environ["KUBERNETES_SERVICE_HOST"]
        port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
        if ":" in host:
            host = f"[{host}]"  # IPv6
        context = ssl.create_default_context(cafile=str(SERVICE_ACCOUNT_DIR / "ca.crt"))
        token_path = SERVICE_ACCOUNT_DIR / "token"
        return cls(f"https://{host}:{port}", lambda: token_path.read_text().strip(), configmap,
                   key, secret, ssl_context=context, timing=timing)

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
        watched = [("configmaps", self.configmap)]
        if self.secret is not None:
            watched.append(("secrets", self.secret))
        connector = aiohttp.TCPConnector(ssl=self.ssl_context if self.ssl_context else False)
        async with aiohttp.ClientSession(connector=connector) as session:
            tasks = [asyncio.create_task(self._watch(session, plural, ref))
                     for plural, ref in watched]
            try:
                last: ConfigSnapshot | None = None
                while True:
                    await self._changed.wait()
                    self._changed.clear()
                    snapshot = self._snapshot(len(watched))
                    if snapshot is not None and snapshot != last:
                        last = snapshot
                        yield snapshot
            finally:
                for task in tasks:
                    task.cancel()
                for task in tasks:
                    with contextlib.suppress(asyncio.CancelledError):
                        await task

    def _snapshot(self, expected: int) -> ConfigSnapshot | None:
        if len(self._states) < expected:
            return None  # wait until every watched object was listed once
        configmap = self._states.get("configmaps")
        if configmap is None:
            return None  # not rendered yet: no snapshot, the gateway stays not ready
        document = (configmap.get("data") or {}).get(self.key)
        if not isinstance(document, str):
            logger.warning("%s has no key %r; waiting for the next change", self.origin, self.key)
            return None
        secrets: dict[str, bytes] = {}
        for name, value in ((self._states.get("secrets") or {}).get("data") or {}).items():
            try:
                secrets[name] = base64.b64decode(value, validate=True)
            except (binascii.Error, TypeError, ValueError):
                logger.warning("secret key %r is not valid base64; left out", name)
        fmt: Literal["json", "yaml"] = "yaml" if self.key.endswith((".yaml", ".yml")) else "json"
        return ConfigSnapshot(document=document.encode(), fmt=fmt, origin=self.origin,
                              secrets=secrets)

    def _set(self, plural: str, state: State) -> None:
        if plural not in self._states or self._states[plural] != state:
            self._states[plural] = state
            self._changed.set()

    async def _watch(self, session: aiohttp.ClientSession, plural: str,
                     ref: tuple[str, str]) -> None:
        """List then watch one object, forever; reconnect with bounded exponential backoff."""
        namespace, name = ref
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
                logger.warning("watching %s %s/%s failed (%s); retrying in %.1fs",
                               plural, namespace, name, exc, delay)
                await asyncio.sleep(delay)
                backoff = min(backoff * 2, self.timing.backoff_max)

    async def _list(self, session: aiohttp.ClientSession, url: str, selector: str,
                    plural: str, name: str) -> str | None:
        timeout = aiohttp.ClientTimeout(total=self.timing.request_timeout)
        async with session.get(url, params={"fieldSelector": selector}, timeout=timeout,
                               headers=self._headers()) as response:
            if response.status != 200:
                raise _ApiError(f"list: HTTP {response.status}")
            body = await response.json()
        # The selector is a request; the name is checked here too.
        items = [i for i in body.get("items") or [] if (i.get("metadata") or {}).get("name") == name]
        self._set(plural, items[0] if items else None)
        version = (body.get("metadata") or {}).get("resourceVersion")
        return version if isinstance(version, str) and version.isdigit() else None

    async def _stream(self, session: aiohttp.ClientSession, url: str, selector: str,
                      version: str | None, plural: str, name: str) -> None:
        params = {"watch": "true", "fieldSelector": selector, "allowWatchBookmarks": "true",
                  "timeoutSeconds": str(self.timing.watch_seconds)}
        if version:
            params["resourceVersion"] = version
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=self.timing.request_timeout,
                                        sock_read=self.timing.watch_seconds + 30)
        async with session.get(url, params=params, timeout=timeout,
                               headers=self._headers()) as response:
            if response.status != 200:
                raise _ApiError(f"watch: HTTP {response.status}")
            buffer = b""
            # Own line splitting: a ConfigMap event can exceed aiohttp's readline limit.
            async for chunk in response.content.iter_any():
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    if line.strip() and not self._event(json.loads(line), plural, name):
                        return  # the server ended this watch (e.g. 410 Gone): relist

    def _event(self, event: Mapping[str, Any], plural: str, name: str) -> bool:
        kind = event.get("type")
        obj = event.get("object") or {}
        if kind == "ERROR":
            logger.info("watch of %s/%s ended by the server: %s", plural, name, obj.get("message"))
            return False
        if kind == "BOOKMARK" or (obj.get("metadata") or {}).get("name") != name:
            return True
        self._set(plural, None if kind == "DELETED" else obj)
        return True
