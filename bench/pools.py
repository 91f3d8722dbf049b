"""Load-aware picking across the servers of a pool vs weighted random, on unequal servers.

Three fake vLLM-like servers on 127.0.0.1, each running at most ``--slots`` requests at once (the
rest wait in its queue, as vLLM's scheduler does) and taking a fixed time per request: fast,
medium, slow (``--service-ms``). Each serves ``/metrics`` with vLLM's gauges (running, waiting,
KV-cache usage from 20 % idle to 60 % with every slot busy: short requests never fill it). An
open-loop client sends ``--rate`` requests per second for ``--seconds`` (arrivals do not slow
down when the gateway does, as real traffic) to a gateway in this process, configured three ways:

- ``weighted-random``: three deployments of equal weight (what a gateway does with three URLs);
- ``in-flight``: one pool deployment (baseUrls), no metrics: power of two choices over the
  gateway's own in-flight requests per server;
- ``load-aware``: the same pool reading each server's /metrics every ``--interval`` seconds.

``--external R`` adds R requests per second sent straight to the fast server (another gateway
replica's share, or clients that bypass the gateway): load this gateway cannot count itself, only
read from the server's metrics.

Reported per configuration: latency percentiles of the gateway's completed requests and the share
of them each server served. Not part of the test suite.

    .venv/bin/python bench/pools.py --rate 150 --seconds 10 [--external 150]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import yaml
from aiohttp import web
from prometheus_client import CollectorRegistry

from modelgate_gateway.app import RELOADER, make_app, make_state
from modelgate_gateway.observability.observer import GatewayObserver
from modelgate_gateway.sources.files import FileSource

API_KEY = "sk-bench"


class FakePod:
    """A model server with ``slots`` batch slots and a fixed service time per request."""

    def __init__(self, name: str, slots: int, service_seconds: float) -> None:
        self.name = name
        self.slots = asyncio.Semaphore(slots)
        self.capacity = slots
        self.service_seconds = service_seconds
        self.running = 0
        self.waiting = 0
        self.served = 0
        self.runner: web.AppRunner | None = None
        self.port = 0

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/responses", self._create)
        app.router.add_get("/metrics", self._metrics)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def close(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def _create(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.waiting += 1
        try:
            await self.slots.acquire()
        finally:
            self.waiting -= 1
        self.running += 1
        try:
            await asyncio.sleep(self.service_seconds)
        finally:
            self.running -= 1
            self.slots.release()
        if "X-Request-Id" in request.headers:  # the gateway's requests only (external ones do not name one)
            self.served += 1
        answer = {
            "id": f"resp_{self.name}{id(request)}",
            "object": "response",
            "status": "completed",
            "model": body.get("model"),
            "output": [],
            "usage": {"input_tokens": 1, "output_tokens": 1, "total_tokens": 2},
        }
        return web.json_response(answer)

    async def _metrics(self, _request: web.Request) -> web.Response:
        text = (
            f"vllm:num_requests_running {self.running}\n"
            f"vllm:num_requests_waiting {self.waiting}\n"
            f"vllm:kv_cache_usage_perc {0.2 + 0.4 * self.running / self.capacity}\n"
        )
        return web.Response(text=text)


def _document(pods: list[FakePod], mode: str, interval: float) -> dict[str, Any]:
    common = {"provider": "vllm", "model": "m", "timeouts": {"firstByteSeconds": 60, "totalSeconds": 120}}
    if mode == "weighted-random":
        deployments = [{"name": p.name, "baseUrl": p.base_url, **common} for p in pods]
        targets = [{"deployment": p.name} for p in pods]
    else:
        pool: dict[str, Any] = {"name": "pool", "baseUrls": [p.base_url for p in pods], **common}
        if mode == "load-aware":
            pool["loadMetrics"] = {"intervalSeconds": interval, "timeoutSeconds": 0.5}
        deployments, targets = [pool], [{"deployment": "pool"}]
    return {
        "apiVersion": "config.modelgate.dev/v1alpha1",
        "kind": "GatewayConfig",
        "spec": {
            "deployments": deployments,
            "models": [{"name": "m", "targets": targets, "retry": {"totalTimeoutSeconds": 120}}],
            "auth": {"keys": [{"name": "bench", "sha256": hashlib.sha256(API_KEY.encode()).hexdigest()}]},
            "observability": {"requestLog": {"enabled": False}},
        },
    }


async def _gateway(directory: Path, doc: dict[str, Any]) -> tuple[web.AppRunner, int, GatewayObserver]:
    path = directory / "config.yaml"
    path.write_text(yaml.safe_dump(doc))
    observer = GatewayObserver(CollectorRegistry())
    state = make_state(observer, None)
    app = make_app(state, FileSource(path, None, 1.0), observer, 1.0)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    await asyncio.wait_for(app[RELOADER].loaded.wait(), 10)
    return runner, site._server.sockets[0].getsockname()[1], observer  # type: ignore[union-attr]


async def _load(port: int, rate: float, seconds: float, path: str = "/v1/responses") -> tuple[list[float], int]:
    url = f"http://127.0.0.1:{port}{path}"
    body = orjson.dumps({"model": "m", "input": "hi"})
    headers = {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"}
    latencies: list[float] = []
    failed = 0
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), timeout=timeout) as session:

        async def one() -> None:
            nonlocal failed
            started = time.perf_counter()
            try:
                async with session.post(url, data=body, headers=headers) as response:
                    await response.read()
                    ok = response.status == 200
            except (aiohttp.ClientError, TimeoutError):
                ok = False
            if ok:
                latencies.append(time.perf_counter() - started)
            else:
                failed += 1

        tasks = []
        start = time.perf_counter()
        for index in range(int(rate * seconds)):  # open loop: arrivals on a fixed schedule
            delay = start + index / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one()))
        await asyncio.wait_for(asyncio.gather(*tasks), 120)
    return latencies, failed


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else float("nan")


async def _run_mode(mode: str, args: argparse.Namespace, service: list[float]) -> dict[str, Any]:
    pods = [FakePod(name, args.slots, ms / 1000) for name, ms in zip(("fast", "medium", "slow"), service, strict=True)]
    for pod in pods:
        await pod.start()
    with tempfile.TemporaryDirectory() as tmp:
        runner, port, observer = await _gateway(Path(tmp), _document(pods, mode, args.interval))
        try:
            await _load(port, args.rate, 1.0)  # warm-up: connections, first readings
            external = None
            if args.external > 0:  # straight to the fast server, from before the measurement to its end
                external = asyncio.create_task(_load(pods[0].port, args.external, args.seconds + 2))
                await asyncio.sleep(1.0)
            for pod in pods:
                pod.served = 0
            gateway_served = {pod.name: 0 for pod in pods}
            latencies, failed = await _load(port, args.rate, args.seconds)
            for pod in pods:
                gateway_served[pod.name] = pod.served
            if external is not None:
                await external
        finally:
            await runner.cleanup()
            await observer.close()
            for pod in pods:
                await pod.close()
    served = Counter(gateway_served)
    total = sum(served.values()) or 1
    return {
        "mode": mode,
        "p50": _pct(latencies, 0.50),
        "p90": _pct(latencies, 0.90),
        "p99": _pct(latencies, 0.99),
        "mean": statistics.fmean(latencies) * 1000 if latencies else float("nan"),
        "failed": failed,
        "shares": {name: served[name] / total for name in ("fast", "medium", "slow")},
    }


async def main(args: argparse.Namespace) -> None:
    service = [float(v) for v in args.service_ms.split(",")]
    capacity = sum(args.slots / (ms / 1000) for ms in service)
    print(
        f"3 servers, {args.slots} slots each, {args.service_ms} ms per request (capacity {capacity:.0f} req/s); "
        f"open loop at {args.rate:g} req/s for {args.seconds:g} s; metrics read every {args.interval:g} s"
        + (f"; {args.external:g} req/s more straight to the fast server" if args.external else "")
        + "\n"
    )
    print("| picking | p50 ms | p90 ms | p99 ms | mean ms | failed | served fast / medium / slow |")
    print("|---|---|---|---|---|---|---|")
    for mode in ("weighted-random", "in-flight", "load-aware"):
        row = await _run_mode(mode, args, service)
        shares = " / ".join(f"{row['shares'][n]:.0%}" for n in ("fast", "medium", "slow"))
        print(
            f"| {mode} | {row['p50']:.0f} | {row['p90']:.0f} | {row['p99']:.0f} | {row['mean']:.0f} | "
            f"{row['failed']} | {shares} |"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=150.0, help="requests per second (open loop)")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--slots", type=int, default=4, help="requests each server runs at once")
    parser.add_argument("--service-ms", default="20,40,120", help="time per request of the three servers")
    parser.add_argument("--interval", type=float, default=1.0, help="loadMetrics.intervalSeconds")
    parser.add_argument("--external", type=float, default=0.0, help="req/s straight to the fast server")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main(parser.parse_args()))
