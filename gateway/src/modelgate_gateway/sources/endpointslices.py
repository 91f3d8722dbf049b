"""Follow the ready endpoints of Services through their EndpointSlices (``serviceRef`` pools).

Why the gateway and not the operator: pods come and go in seconds (a rollout, a crash, a scale-up)
and a request must stop going to a pod the moment it is not ready. The gateway watches the slices
itself, as Envoy follows EDS: an event reaches every replica in milliseconds, while the operator
would have to re-render and republish the config document (and wait for every replica to load
it) on every pod change. The cost is read access to EndpointSlices in the namespaces of the
Services routes name; the chart grants exactly that (docs/operations.md).

One list-then-watch per Service (``labelSelector=kubernetes.io/service-name=<name>``), plain HTTP
through aiohttp like :mod:`.kube`; a broken watch is relisted with bounded backoff and the last
known endpoints stay in use meanwhile. An endpoint counts when its ``ready`` condition is not
false (unset means ready, by the API's definition); FQDN slices are ignored.
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import aiohttp

from ..runtime import ServiceEndpoint, ServiceKey
from .kube import WatchTiming, stop_watches, watch_events

log = logging.getLogger("modelgate_gateway.sources.endpointslices")

MAX_SLICES = 1024
"""Slices per Service kept (the controller puts up to 100 endpoints in each)."""
SERVICE_LABEL = "kubernetes.io/service-name"


def ready_endpoints(slices: Iterable[Mapping[str, Any]]) -> tuple[ServiceEndpoint, ...]:
    """(address, ports) of every ready IP endpoint in a Service's slices."""
    found: set[ServiceEndpoint] = set()
    for item in slices:
        if not isinstance(item, Mapping) or item.get("addressType") not in ("IPv4", "IPv6"):
            continue
        ports = tuple(
            sorted(
                (str(p.get("name") or ""), int(p["port"]))
                for p in item.get("ports") or ()
                if isinstance(p, Mapping) and isinstance(p.get("port"), int) and p.get("protocol", "TCP") == "TCP"
            )
        )
        for endpoint in item.get("endpoints") or ():
            if not isinstance(endpoint, Mapping):
                continue
            conditions = endpoint.get("conditions")
            if isinstance(conditions, Mapping) and conditions.get("ready") is False:
                continue
            addresses = endpoint.get("addresses")
            if isinstance(addresses, list) and addresses and isinstance(addresses[0], str):
                found.add((addresses[0], ports))  # the API allows several; the controller sets one
    return tuple(sorted(found))


def _name(item: Any) -> str | None:
    metadata = item.get("metadata") if isinstance(item, Mapping) else None
    name = metadata.get("name") if isinstance(metadata, Mapping) else None
    return name if isinstance(name, str) else None


class EndpointSliceFollower:
    """Watches the slices of the Services :meth:`follow` names; reports each change to ``on_change``."""

    def __init__(
        self,
        server: str,
        token: str | Callable[[], str] | None,
        *,
        ssl_context: ssl.SSLContext | None = None,
        timing: WatchTiming | None = None,
    ) -> None:
        self.server = server.rstrip("/")
        self._token = token
        self.on_change: Callable[[ServiceKey, tuple[ServiceEndpoint, ...]], None] = lambda _service, _found: None
        """Set by the app: where each Service's ready endpoints go (the gateway state's pool board)."""
        self._ssl = ssl_context
        self.timing = timing or WatchTiming()
        self._wanted: set[ServiceKey] = set()
        self._watches: dict[ServiceKey, asyncio.Task[None]] = {}
        self._session: aiohttp.ClientSession | None = None
        self._changed = asyncio.Event()

    def follow(self, services: set[ServiceKey]) -> None:
        """Follow exactly these Services from now on (called after each reload)."""
        self._wanted = set(services)
        self._changed.set()

    def _headers(self) -> dict[str, str]:
        token = self._token() if callable(self._token) else self._token
        return {"Authorization": f"Bearer {token}"} if token else {}

    async def run(self) -> None:
        connector = aiohttp.TCPConnector(ssl=self._ssl if self._ssl else False, limit=0)
        async with aiohttp.ClientSession(connector=connector) as session:
            try:
                while True:
                    self._changed.clear()
                    for key in [k for k in self._watches if k not in self._wanted]:
                        self._watches.pop(key).cancel()
                    for key in self._wanted - set(self._watches):
                        self._watches[key] = asyncio.create_task(self._watch(session, key))
                    await self._changed.wait()
            finally:
                await stop_watches(self._watches)

    async def _watch(self, session: aiohttp.ClientSession, service: ServiceKey) -> None:
        namespace, name = service
        url = f"{self.server}/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices"
        selector = f"{SERVICE_LABEL}={name}"
        backoff = self.timing.backoff_initial
        slices: dict[str, Mapping[str, Any]] = {}
        while True:
            try:
                version = await self._list(session, url, selector, service, slices)
                backoff = self.timing.backoff_initial
                await self._stream(session, url, selector, version, service, slices)
            except (aiohttp.ClientError, TimeoutError, ValueError, TypeError, AttributeError) as exc:
                delay = backoff * (1 + random.random() / 2)
                log.warning("watching the EndpointSlices of %s/%s failed (%s); retrying in %.1fs", *service, exc, delay)
                await asyncio.sleep(delay)
                backoff = min(backoff * 2, self.timing.backoff_max)

    async def _list(
        self,
        session: aiohttp.ClientSession,
        url: str,
        selector: str,
        service: ServiceKey,
        slices: dict[str, Mapping[str, Any]],
    ) -> str | None:
        timeout = aiohttp.ClientTimeout(total=self.timing.request_timeout)
        params = {"labelSelector": selector, "limit": str(MAX_SLICES)}
        async with session.get(url, params=params, timeout=timeout, headers=self._headers()) as response:
            if response.status == 403:
                raise ValueError(
                    f"forbidden: the gateway may not read EndpointSlices in namespace {service[0]} "
                    "(grant it with the chart's gateway.rbac.endpointSliceNamespaces)"
                )
            if response.status != 200:
                raise ValueError(f"list: HTTP {response.status}")
            body = await response.json()
        slices.clear()
        for item in body.get("items") or ():
            slice_name = _name(item)
            if slice_name is not None:
                slices[slice_name] = item
        self.on_change(service, ready_endpoints(slices.values()))
        version = (body.get("metadata") or {}).get("resourceVersion")
        return version if isinstance(version, str) and version.isdigit() else None

    async def _stream(
        self,
        session: aiohttp.ClientSession,
        url: str,
        selector: str,
        version: str | None,
        service: ServiceKey,
        slices: dict[str, Mapping[str, Any]],
    ) -> None:
        selected = ("labelSelector", selector)
        async for event in watch_events(session, url, selected, version, self.timing, self._headers()):
            kind = event.get("type")
            obj = event.get("object") or {}
            if kind == "ERROR":
                log.info("EndpointSlice watch of %s/%s ended by the server: %s", *service, obj.get("message"))
                return  # relist
            slice_name = _name(obj)
            if kind == "BOOKMARK" or slice_name is None:
                continue
            if kind == "DELETED":
                slices.pop(slice_name, None)
            elif slice_name in slices or len(slices) < MAX_SLICES:
                slices[slice_name] = obj
            self.on_change(service, ready_endpoints(slices.values()))
