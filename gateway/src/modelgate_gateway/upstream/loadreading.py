"""Read the load of a pool's servers from their Prometheus metrics, in the background.

vLLM, SGLang and TGI publish their queue on ``/metrics``. One task per pool deployment with
``loadMetrics`` reads every server of the pool each ``intervalSeconds`` (reads of one round run
at once, at most :data:`MAX_PARALLEL_READS` in the whole process; each bounded by
``timeoutSeconds``, connect included) and stores the values in the server's
:class:`~.pools.LoadSample`; the picker (:mod:`.picking`) only reads those numbers, so the hot
path never waits for a metrics call. A failed read leaves the sample to go stale: the server is
then judged by the gateway's own in-flight count until a read succeeds again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from ..http1 import Endpoint, Http1Client
from ..runtime import LoadMetricsRuntime
from .balancing import HealthBoard
from .pools import LoadSample, Member, Pool, PoolBoard, member_url

log = logging.getLogger("modelgate_gateway.upstream.loadreading")

MAX_PARALLEL_READS = 64
MAX_METRICS_BYTES = 4 * 1024 * 1024
"""A metrics page larger than this is refused (vLLM's is ~100 KiB with every histogram)."""
SUPERVISE_SECONDS = 1.0
"""How soon a new pool deployment (a reload) gets its reading task."""

RUNNING = ("vllm:num_requests_running", "sglang:num_running_reqs", "tgi_batch_current_size")
WAITING = ("vllm:num_requests_waiting", "sglang:num_queue_reqs", "tgi_queue_size")
KV_CACHE = ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc", "sglang:token_usage")
_ALL = RUNNING + WAITING + KV_CACHE


def parse_load(text: str) -> tuple[float, float, float] | None:
    """(running, waiting, KV-cache usage 0..1) from a Prometheus text page; None when it names
    neither a running nor a waiting count. Series of one name (one per served model) are summed;
    the KV-cache usage is the largest."""
    running = waiting = kv_cache = 0.0
    found = False
    for line in text.splitlines():
        if not line.startswith(_ALL):
            continue
        brace, space = line.find("{"), line.find(" ")
        if brace != -1 and (space == -1 or brace < space):  # name{labels} value [timestamp]
            name, rest = line[:brace], line[line.rfind("}") + 1 :]
        else:  # name value [timestamp]
            name, rest = line[:space], line[space:]
        fields = rest.split()
        try:
            value = float(fields[0])
        except (IndexError, ValueError):
            continue
        if not value >= 0:  # NaN, negative: not a count
            continue
        if name in RUNNING:
            running += value
            found = True
        elif name in WAITING:
            waiting += value
            found = True
        elif name in KV_CACHE:
            kv_cache = max(kv_cache, min(1.0, value))
    return (running, waiting, kv_cache) if found else None


class LoadReader:
    """The reading tasks of every pool with ``loadMetrics``; started and stopped by the app."""

    def __init__(self, pools: PoolBoard, board: HealthBoard, client: Http1Client | None = None) -> None:
        self._pools = pools
        self._board = board
        self._client = client or Http1Client(keepalive_seconds=30.0, max_body_bytes=MAX_METRICS_BYTES)
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._endpoints: dict[str, tuple[str, Endpoint]] = {}
        self._parallel = asyncio.Semaphore(MAX_PARALLEL_READS)

    async def run(self) -> None:
        try:
            while True:
                self._supervise()
                await asyncio.sleep(SUPERVISE_SECONDS)
        finally:
            tasks = list(self._tasks.values())
            self._tasks.clear()
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await self._client.close()

    def _supervise(self) -> None:
        wanted = {name for name, pool in self._pools.pools.items() if _metrics(pool) is not None}
        for name in [n for n, task in self._tasks.items() if n not in wanted or task.done()]:
            self._tasks.pop(name).cancel()  # a pool gone, or a task that ended: started again below
        for name in wanted - set(self._tasks):
            self._tasks[name] = asyncio.create_task(self._follow(name), name=f"modelgate-load-{name}")
        keys = {m.dep.health_key for name in wanted for m in self._pools.pools[name].members}
        for key in [k for k in self._endpoints if k not in keys]:
            del self._endpoints[key]
        self._client.retire({url for url, _ in self._endpoints.values()}, 0.0)

    async def _follow(self, name: str) -> None:
        while True:
            pool = self._pools.get(name)
            metrics = _metrics(pool) if pool is not None else None
            if pool is None or metrics is None:
                return
            started = time.monotonic()
            await asyncio.gather(*(self._read(pool, member, metrics) for member in pool.members))
            await asyncio.sleep(max(0.0, metrics.interval_seconds - (time.monotonic() - started)))

    def _endpoint(self, pool: Pool, member: Member, metrics: LoadMetricsRuntime) -> tuple[str, Endpoint]:
        assert pool.base.pool is not None and member.dep.endpoint is not None
        served = member.dep.endpoint
        url = member_url("https" if served.tls else "http", served.host, metrics.port or served.port, "")
        cached = self._endpoints.get(member.dep.health_key)
        if cached is None or cached[0] != url:
            spec = pool.base.pool
            endpoint = Endpoint(url, spec.headers, connect_seconds=metrics.timeout_seconds, read_idle_seconds=5.0)
            cached = self._endpoints[member.dep.health_key] = (url, endpoint)
        return cached

    async def _read(self, pool: Pool, member: Member, metrics: LoadMetricsRuntime) -> None:
        sample = member.load
        try:
            async with self._parallel, asyncio.timeout(metrics.timeout_seconds):
                url, endpoint = self._endpoint(pool, member, metrics)
                reply = await self._client.send(endpoint, "GET", metrics.path, pool_key=url)
                try:
                    body = await reply.read()
                finally:
                    reply.release()
            if reply.status != 200:
                raise ValueError(f"HTTP {reply.status}")
            found = parse_load(body.decode("utf-8", "replace"))
            if found is None:
                raise ValueError("no queue metrics (vLLM, SGLang or TGI names) on the page")
        except (OSError, TimeoutError, ValueError) as exc:
            _failed(pool, member, sample, exc)
            return
        except Exception as exc:  # a bug must not end the pool's readings: the sample goes stale
            if sample.failures == 0:
                log.exception("deployment %s: reading the load of %s failed", pool.base.name, member.dep.member)
            _failed(pool, member, sample, exc)
            return
        sample.running, sample.waiting, sample.kv_cache = found
        sample.own_at_read = self._board.get(member.dep.health_key).outstanding
        sample.at = time.monotonic()
        sample.failures = 0


def _metrics(pool: Pool | None) -> LoadMetricsRuntime | None:
    return pool.base.pool.metrics if pool is not None and pool.base.pool is not None else None


def _failed(pool: Pool, member: Member, sample: LoadSample, exc: Exception) -> None:
    sample.failures += 1
    if sample.failures == 1:  # once per run of failures: a dead server would log every second
        log.warning(
            "deployment %s: reading the load of %s failed (%s); judging it by the gateway's in-flight requests",
            pool.base.name,
            member.dep.member,
            exc or type(exc).__name__,
        )
