"""The servers of pool deployments (``baseUrls``, ``serviceRef``), as they come and go.

A pool deployment is one deployment to routing, metrics and config, and several servers to the
executor: each server is a copy of the deployment's runtime with its own endpoint, connection
pool and health key (``name@member``), so each is its own failure and cooldown unit and a
response id can name the server that holds the response. Membership changes (a reload, an
EndpointSlice event) replace a pool's member tuple as a whole; a request holds the tuple it read,
so a change never alters one half-way. A server that stays keeps its :class:`LoadSample`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from urllib.parse import urlsplit

from ..errors import GatewayError
from ..runtime import DeploymentRuntime, RuntimeConfig, ServiceEndpoint, ServiceKey, TargetRuntime

log = logging.getLogger("modelgate_gateway.upstream.pools")


@dataclass(slots=True)
class LoadSample:
    """A server's last metrics reading (monotonic ``at``; never read: ``at`` is -inf)."""

    running: float = 0.0
    waiting: float = 0.0
    kv_cache: float = 0.0
    at: float = float("-inf")
    own_at_read: int = 0
    """The gateway's own in-flight requests to the server when it was read (they are in the reading)."""
    failures: int = 0
    """Consecutive failed reads (for the log and the metric; the sample just goes stale)."""


class Member:
    """One server of a pool."""

    __slots__ = ("dep", "load", "target")

    def __init__(self, dep: DeploymentRuntime, load: LoadSample) -> None:
        self.dep = dep
        self.load = load
        self.target = TargetRuntime(dep.health_key, 1.0)
        """For session ranking (:func:`.affinity.ranked`): one equal-weight target per server."""


class Pool:
    """A pool deployment's current servers; replaced as a whole, never mutated."""

    __slots__ = ("base", "by_key", "by_member", "members", "targets")

    def __init__(self, base: DeploymentRuntime, members: tuple[Member, ...]) -> None:
        self.base = base
        self.members = members
        self.by_member = {m.dep.member: m for m in members}
        self.by_key = {m.dep.health_key: m for m in members}
        self.targets = tuple(m.target for m in members)


def member_url(scheme: str, address: str, port: int, path: str) -> str:
    host = f"[{address}]" if ":" in address else address
    return f"{scheme}://{host}:{port}{path}"


def _ports_match(wanted: int | str, ports: tuple[tuple[str, int], ...]) -> int | None:
    for name, number in ports:
        if (isinstance(wanted, str) and name == wanted) or (isinstance(wanted, int) and number == wanted):
            return number
    return None


class PoolBoard:
    """Every pool of the current config, and what the Services they name hold right now.

    ``on_change`` runs after a Service's servers changed (the gateway state then retires the
    connection pools and forgets the health of servers that left; after a reload it does so itself).
    """

    def __init__(self) -> None:
        self.pools: dict[str, Pool] = {}
        self._services: dict[ServiceKey, tuple[ServiceEndpoint, ...]] = {}
        self._deps: dict[str, DeploymentRuntime] = {}
        self.on_change: Callable[[], None] | None = None
        self.on_services: Callable[[set[ServiceKey]], None] | None = None
        """Called with the Services the config names, after a reload (the follower watches those)."""

    def get(self, name: str) -> Pool | None:
        return self.pools.get(name)

    def services(self) -> set[ServiceKey]:
        return {(d.pool.service[0], d.pool.service[1]) for d in self._deps.values() if d.pool and d.pool.service}

    def sync(self, runtime: RuntimeConfig) -> None:
        """After a reload: pools for the pool deployments of ``runtime``, none for the others."""
        self._deps = {name: dep for name, dep in runtime.deployments.items() if dep.pool is not None}
        for name in [n for n in self.pools if n not in self._deps]:
            del self.pools[name]
        for name in self._deps:
            self._rebuild(name)
        wanted = self.services()
        for key in [k for k in self._services if k not in wanted]:
            del self._services[key]
        if self.on_services is not None:
            self.on_services(wanted)
        elif wanted:
            log.warning(
                "deployments name Services (%s) but this gateway follows no Kubernetes API (in a pod, or "
                "--kubeconfig): they have no servers",
                ", ".join(sorted(f"{ns}/{name}" for ns, name in wanted)),
            )

    def discovered(self, service: ServiceKey, endpoints: Iterable[ServiceEndpoint]) -> None:
        """The ready endpoints of a Service now (the EndpointSlice follower calls this)."""
        found = tuple(sorted(set(endpoints)))
        if self._services.get(service) == found:
            return
        self._services[service] = found
        changed = False
        for name, dep in self._deps.items():
            assert dep.pool is not None
            if dep.pool.service is not None and dep.pool.service[:2] == service:
                changed = self._rebuild(name) or changed
        if changed and self.on_change is not None:
            self.on_change()

    def forget(self, service: ServiceKey) -> None:
        """The Service's endpoints are unknown (not listed yet, or its watch failed for good)."""
        self.discovered(service, ())

    def _urls(self, dep: DeploymentRuntime) -> list[tuple[str, str]]:
        """(member id, base URL) of each server of a pool deployment."""
        pool = dep.pool
        assert pool is not None
        if pool.service is None:
            return [(urlsplit(url).netloc, url) for url in pool.urls]
        out = []
        for address, ports in self._services.get(pool.service[:2], ()):
            port = _ports_match(pool.service[2], ports)
            if port is not None:
                url = member_url(pool.scheme, address, port, pool.path)
                out.append((urlsplit(url).netloc, url))
        return out

    def _rebuild(self, name: str) -> bool:
        dep = self._deps[name]
        assert dep.pool is not None
        old = self.pools.get(name)
        previous: Mapping[str, Member] = old.by_member if old is not None else {}
        members = []
        for member_id, url in self._urls(dep):
            kept = previous.get(member_id)
            if kept is not None and kept.dep.pool is dep.pool:
                members.append(kept)  # same server, same config: the very same member
                continue
            copy = replace(
                dep,
                endpoint=dep.pool.endpoint(url),
                pool_key=f"{name} {url}",
                member=member_id,
                health_key=f"{name}@{member_id}",
            )
            members.append(Member(copy, kept.load if kept is not None else LoadSample()))
        if (
            old is not None
            and old.base is dep
            and tuple(m.dep.member for m in old.members) == tuple(m.dep.member for m in members)
        ):
            return False
        self.pools[name] = Pool(dep, tuple(members))
        if old is not None and len(old.members) != len(members):
            log.info("deployment %s: %d server(s) (was %d)", name, len(members), len(old.members))
        return True

    def connection_keys(self) -> set[str]:
        return {m.dep.pool_key for pool in self.pools.values() for m in pool.members}

    def health_keys(self) -> set[str]:
        return {m.dep.health_key for pool in self.pools.values() for m in pool.members}


class ServerGone(GatewayError):
    """A response (or conversation) pinned to one server of a pool whose server has left the pool.

    Self-hosted servers (vLLM) keep stored responses in their process memory: when the server is
    gone, so is the response. Said plainly, instead of a "not found" from a random other server.
    """

    type = "invalid_request_error"
    code = "response_server_gone"

    def __init__(self, deployment: str, member: str, param: str | None) -> None:
        what = "conversation" if param == "conversation" else "response"
        super().__init__(
            f"The server that held this {what} ({member}, of deployment '{deployment}') is no longer running: "
            f"it kept the {what} in its own memory, so it is gone. Start a new {what}.",
            param=param,
            status=400 if param is not None else 404,
        )
