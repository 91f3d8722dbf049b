"""Pick one server of a pool: by its load (power of two choices), or by the request's session.

Load of a server, lower is better (docs/operations.md, "Picking a server of a pool"):

* with a fresh metrics reading (younger than ``staleSeconds``): the requests at the server now,
  estimated as ``running + waiting`` of the reading plus the change of the gateway's own in-flight
  requests to it since the reading (its own new requests count at once, finished ones stop
  counting; never below its own in-flight count), plus ``8 x max(0, kv_cache - 0.8) / 0.2`` (a KV
  cache filling past 80 % adds up to 8: the server is about to preempt);
* without one (no ``loadMetrics``, the read failed, or it is stale): the gateway's own in-flight
  requests to the server.

Power of two choices: two distinct servers drawn at random; the one a new request would finish on
sooner wins: ``(load + 1) x first-byte latency EWMA`` of each (a slow server's queue costs more
than a fast one's; a server not measured yet counts as fast as the other, so it gets tried). It
is O(1) per request, needs no sorting, and avoids the herd a strict "least loaded" causes when
every gateway replica sends to the same server between two readings.

A session (``prompt_cache_key``, an affinity header) sticks to the first available server of its
rendezvous ranking, unless that server is *saturated* (queue at ``saturatedQueue`` or KV cache at
``saturatedKvCache``): then the load decides. Availability is the balancer's (cooldown, one
probe after it); when every server cools down they are used anyway (panic mode).

Pure: clock and dice come in as arguments; no aiohttp, no I/O.
"""

from __future__ import annotations

import random
import time
from collections.abc import Mapping, Set
from typing import Any

from ..runtime import DeploymentRuntime, LoadMetricsRuntime, RuntimeConfig
from .affinity import ranked
from .balancing import HealthBoard, available, claim
from .pools import Member, Pool, PoolBoard, ServerGone

KV_KNEE = 0.8
KV_WEIGHT = 8.0


def _always(_name: str) -> bool:
    return True


def load_of(member: Member, outstanding: int, metrics: LoadMetricsRuntime | None, now: float) -> float:
    sample = member.load
    if metrics is None or now - sample.at > metrics.stale_seconds:
        return float(outstanding)
    score = max(float(outstanding), sample.running + sample.waiting + (outstanding - sample.own_at_read))
    if sample.kv_cache > KV_KNEE:
        score += KV_WEIGHT * (sample.kv_cache - KV_KNEE) / (1.0 - KV_KNEE)
    return score


def saturated(member: Member, metrics: LoadMetricsRuntime | None, now: float) -> bool:
    if metrics is None:
        return False
    sample = member.load
    if now - sample.at > metrics.stale_seconds:
        return False
    return sample.waiting >= metrics.saturated_queue or sample.kv_cache >= metrics.saturated_kv_cache


def _usable(board: HealthBoard, member: Member, now: float, exclude: Set[str]) -> bool:
    key = member.dep.health_key
    return key not in exclude and available(board, key, now, _always)


def pick_member(
    pool: Pool,
    board: HealthBoard,
    *,
    now: float,
    rng: random.Random,
    exclude: Set[str] = frozenset(),
    session: str | None = None,
) -> Member | None:
    """The server to try next, or None when every one was tried (or the pool is empty)."""
    members = pool.members
    count = len(members)
    if count == 0:
        return None
    metrics = pool.base.pool.metrics if pool.base.pool is not None else None
    if session is not None:
        for key in ranked(session, pool.targets):
            member = pool.by_key[key]
            if _usable(board, member, now, exclude):
                if not saturated(member, metrics, now):
                    return _claimed(board, member, now)
                break  # its own server is saturated: the load decides
    if count >= 2:  # the common case: two random servers, both usable
        first = rng.randrange(count)
        second = rng.randrange(count - 1)
        if second >= first:
            second += 1
        a, b = members[first], members[second]
        if _usable(board, a, now, exclude) and _usable(board, b, now, exclude):
            return _claimed(board, _lighter(board, a, b, metrics, now), now)
    usable = [m for m in members if _usable(board, m, now, exclude)]
    if not usable:  # panic mode: every untried server is cooling down
        usable = [
            m for m in members if m.dep.health_key not in exclude and board.deferred_for(m.dep.health_key, now) <= 0
        ]
        if not usable:
            return None
    if len(usable) == 1:
        return _claimed(board, usable[0], now)
    a, b = rng.sample(usable, 2)
    return _claimed(board, _lighter(board, a, b, metrics, now), now)


def _lighter(board: HealthBoard, a: Member, b: Member, metrics: LoadMetricsRuntime | None, now: float) -> Member:
    """The server a new request would finish on sooner: (its load + 1) times its first-byte
    latency EWMA (a server not measured yet is taken to be as fast as the other: it gets tried)."""
    state_a, state_b = board.get(a.dep.health_key), board.get(b.dep.health_key)
    speed_a = state_a.ewma_first_byte or state_b.ewma_first_byte or 1.0
    speed_b = state_b.ewma_first_byte or speed_a
    cost_a = (load_of(a, state_a.outstanding, metrics, now) + 1.0) * speed_a
    cost_b = (load_of(b, state_b.outstanding, metrics, now) + 1.0) * speed_b
    return b if cost_b < cost_a else a


def _claimed(board: HealthBoard, member: Member, now: float) -> Member:
    claim(board, member.dep.health_key, now)
    return member


def server_for(
    pools: PoolBoard,
    board: HealthBoard,
    rng: random.Random,
    runtime: RuntimeConfig,
    name: str,
    *,
    tried: Set[str],
    session: str | None,
    updates: Mapping[str, Any],
) -> DeploymentRuntime | None:
    """What the executor sends to: deployment ``name`` itself, or for a pool deployment one of its
    servers (the one a pinned ``name@member`` names, else by load or session). None: no server
    left to try. Raises :class:`ServerGone` when the pinned server has left its pool."""
    dep = runtime.deployments.get(name)
    member = ""
    if dep is None:  # pinned to one server: name@server
        base, _, member = name.partition("@")
        dep = runtime.deployments[base]
    elif dep.pool is None:
        return dep
    pool = pools.get(dep.name)
    if member:
        found = pool.by_member.get(member) if pool is not None else None
        if found is None:
            param = next((p for p in ("previous_response_id", "conversation") if p in updates), None)
            raise ServerGone(dep.name, member, param)
        return found.dep
    if pool is None:
        return None
    chosen = pick_member(pool, board, now=time.monotonic(), rng=rng, exclude=tried, session=session)
    return None if chosen is None else chosen.dep
