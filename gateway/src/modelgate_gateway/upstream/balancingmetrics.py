"""Metrics of balancing: effective weights, and the servers of pool deployments and their load.

- ``modelgate_deployment_effective_weight{model,deployment}`` gauge: the weight a weighted-random
  model uses for the deployment now (its configured weight, scaled by adaptive weights when on)
- ``modelgate_pool_servers{deployment}`` gauge: servers of a pool deployment (ready endpoints)
- ``modelgate_pool_server_load{deployment,server}`` gauge: the load the picker compares
  (docs/operations.md, "Picking a server of a pool")
- ``modelgate_pool_server_in_flight{deployment,server}`` gauge: this replica's requests to the server
- ``modelgate_pool_server_queue{deployment,server}`` and ``modelgate_pool_server_kv_cache_usage``
  gauges: the last metrics reading (absent when none is fresh)
- ``modelgate_pool_server_metrics_fresh{deployment,server}`` gauge: 1 when the picker uses a
  metrics reading, 0 when it falls back to the in-flight count

Computed when Prometheus scrapes, never on the request path. Server labels are bounded by the
pools' sizes and vanish with the servers.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from ..runtime import RuntimeConfig
from .balancing import HealthBoard, best_latency, effective_weight
from .picking import load_of
from .pools import PoolBoard


class BalancingCollector(Collector):
    def __init__(self, runtime: Callable[[], RuntimeConfig | None], board: HealthBoard, pools: PoolBoard) -> None:
        self._runtime = runtime
        self._board = board
        self._pools = pools

    def collect(self) -> Iterator[GaugeMetricFamily]:
        runtime = self._runtime()
        weights = GaugeMetricFamily(
            "modelgate_deployment_effective_weight",
            "Weight a weighted-random model uses for the deployment now (adaptive weights applied).",
            labels=("model", "deployment"),
        )
        if runtime is not None:
            for model in runtime.models.values():
                floor = model.adaptive_floor
                best = best_latency(model.targets, self._board) if floor is not None else None
                for target in model.targets:
                    value = target.weight if floor is None else effective_weight(target, self._board, best, floor)
                    weights.add_metric((model.name, target.deployment), value)
        yield weights
        yield from self._servers()

    def _servers(self) -> Iterator[GaugeMetricFamily]:
        server = ("deployment", "server")
        count = GaugeMetricFamily("modelgate_pool_servers", "Servers of a pool deployment.", labels=("deployment",))
        load = GaugeMetricFamily("modelgate_pool_server_load", "Load the picker compares.", labels=server)
        flight = GaugeMetricFamily("modelgate_pool_server_in_flight", "This replica's requests.", labels=server)
        queue = GaugeMetricFamily("modelgate_pool_server_queue", "Waiting requests (last reading).", labels=server)
        kv = GaugeMetricFamily("modelgate_pool_server_kv_cache_usage", "KV-cache usage (last reading).", labels=server)
        fresh = GaugeMetricFamily(
            "modelgate_pool_server_metrics_fresh", "1: picked by metrics; 0: by in-flight count.", labels=server
        )
        now = time.monotonic()
        for name, pool in self._pools.pools.items():
            count.add_metric((name,), len(pool.members))
            metrics = pool.base.pool.metrics if pool.base.pool is not None else None
            for member in pool.members:
                labels = (name, member.dep.member)
                outstanding = self._board.get(member.dep.health_key).outstanding
                flight.add_metric(labels, outstanding)
                load.add_metric(labels, load_of(member, outstanding, metrics, now))
                is_fresh = metrics is not None and now - member.load.at <= metrics.stale_seconds
                fresh.add_metric(labels, 1.0 if is_fresh else 0.0)
                if is_fresh:
                    queue.add_metric(labels, member.load.waiting)
                    kv.add_metric(labels, member.load.kv_cache)
        yield from (count, load, flight, queue, kv, fresh)
