"""Fault benchmark: does the gateway's memory stay flat, and its loop responsive, under upstream failures?

Starts the real ``modelgate-gateway`` process (uvloop, the tuned collector, request log on) in
front of a misbehaving upstream (``tests/support/misbehaving_upstream.py``, in this process, on
127.0.0.1), then runs storms of one failure kind each, a soak with failures mixed into successes,
and a final round of successes. Reports the gateway's RSS before and after each storm and after the
final successes, the answers the client saw, and the longest ``/healthz`` round trip while the
storm ran (a stall of the gateway's event loop delays it; so does a busy machine: it is an upper
bound). Bounded: every storm has a request count, every request a timeout; stops by itself.

    python bench/faults.py                        # the full run, ~2-4 minutes
    python bench/faults.py --scale 0.25           # a quarter of every count
    python bench/faults.py --src /tmp/base/gateway/src --scale 0.1   # a gateway from other sources

Results: printed, and written to ``bench/results/faults.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import http.client
import json
import os
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

import procs
import targets

sys.path.insert(0, str(targets.HERE.parent / "tests" / "support"))
from misbehaving_upstream import Fault, MisbehavingUpstream

GATEWAY_PORT, UPSTREAM_KEY = 18011, "sk-bench-upstream"
REQUEST_TIMEOUT = 30.0
# Public model -> (fault of its deployment, first-byte timeout of that deployment)
KINDS: dict[str, tuple[Fault, float]] = {
    "ok": (Fault.NONE, 10.0),
    "reset-before-headers": (Fault.RESET_BEFORE_HEADERS, 10.0),
    "reset-mid-body": (Fault.RESET_MID_BODY, 10.0),
    "timeout": (Fault.HANG, 0.05),
    "status-500": (Fault.STATUS_500, 10.0),
    "never-reads": (Fault.NONE, 1.0),  # the upstream's global fault is switched for its storm
    "reset-mid-stream": (Fault.RESET_MID_STREAM, 10.0),
}


@dataclass
class Storm:
    name: str
    model: str
    count: int
    concurrency: int
    body_bytes: int = 1024
    stream: bool = False
    mix: tuple[str, ...] = ()
    """Models to cycle through instead of ``model`` (the soak)."""


@dataclass
class Figures:
    name: str
    requests: int
    seconds: float
    rss_before_mib: float
    rss_after_mib: float
    longest_healthz_ms: float
    statuses: dict[str, int] = field(default_factory=dict)


def gateway_config(upstream_url: str) -> dict[str, Any]:
    deployments = [{"name": f"d-{kind}", "provider": "openai-compatible", "baseUrl": upstream_url,
                    "model": f"up-{kind}", "credentials": {"env": targets.UPSTREAM_KEY_ENV},
                    "timeouts": {"firstByteSeconds": first_byte, "streamIdleSeconds": 10.0}}
                   for kind, (_, first_byte) in KINDS.items()]
    models = [{"name": kind, "targets": [{"deployment": f"d-{kind}"}], "retry": {"maxAttempts": 1},
               "cooldown": {"consecutiveFailures": 1000}}  # every request reaches the upstream
              for kind in KINDS]
    return {"apiVersion": "config.modelgate.dev/v1alpha1", "kind": "GatewayConfig",
            "spec": {"deployments": deployments, "models": models,
                     "auth": {"keys": [{"name": "bench", "sha256": _sha256(targets.API_KEY)}]},
                     "limits": {"maxRequestBodyBytes": 64 * 1024 * 1024},
                     "observability": {"requestLog": {"enabled": True, "path": "/dev/null"}}}}


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def request_bytes(model: str, body_bytes: int, stream: bool) -> bytes:
    body = orjson.dumps({"model": model, "input": "x" * body_bytes, "stream": stream})
    head = (f"POST /v1/responses HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Authorization: Bearer {targets.API_KEY}\r\nContent-Length: {len(body)}\r\n\r\n")
    return head.encode() + body


async def exchange(conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None, wire: bytes,
                   ) -> tuple[int, tuple[asyncio.StreamReader, asyncio.StreamWriter] | None]:
    """One request on a keep-alive connection (opened if None): the status, and the connection if reusable."""
    if conn is None:
        conn = await asyncio.open_connection("127.0.0.1", GATEWAY_PORT)
    reader, writer = conn
    writer.write(wire)
    status_line = await reader.readuntil(b"\r\n")
    status = int(status_line.split()[1])
    length, chunked, close = None, False, False
    while (line := await reader.readuntil(b"\r\n")) != b"\r\n":
        name, _, value = line.decode("latin-1").partition(":")
        name, value = name.strip().lower(), value.strip().lower()
        length = int(value) if name == "content-length" else length
        chunked = chunked or (name == "transfer-encoding" and "chunked" in value)
        close = close or (name == "connection" and value == "close")
    if chunked:
        while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
            await reader.readexactly(size + 2)
        await reader.readuntil(b"\r\n")
    elif length:
        await reader.readexactly(length)
    if close:
        writer.close()
        return status, None
    return status, conn


async def run_storm(storm: Storm) -> Counter[str]:
    wires = [request_bytes(m, storm.body_bytes, storm.stream) for m in (storm.mix or (storm.model,))]
    seen: Counter[str] = Counter()
    counter = iter(range(storm.count))

    async def worker() -> None:
        conn = None
        for n in counter:
            try:
                status, conn = await asyncio.wait_for(exchange(conn, wires[n % len(wires)]), REQUEST_TIMEOUT)
                seen[str(status)] += 1
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError) as exc:
                seen[type(exc).__name__] += 1
                if conn is not None:
                    conn[1].close()
                conn = None
        if conn is not None:
            conn[1].close()

    await asyncio.gather(*(worker() for _ in range(storm.concurrency)))
    return seen


class HealthzProbe:
    """GET /healthz every 20 ms from a thread of its own (this process's loop is busy with the
    storm: its stalls must not count); keeps the longest round trip."""

    def __init__(self) -> None:
        self.longest = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", GATEWAY_PORT, timeout=REQUEST_TIMEOUT)
        while not self._stop.wait(0.02):
            started = time.perf_counter()
            try:
                conn.request("GET", "/healthz")
                conn.getresponse().read()
            except (OSError, http.client.HTTPException):
                conn.close()
            self.longest = max(self.longest, time.perf_counter() - started)
        conn.close()

    def __enter__(self) -> HealthzProbe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


async def measure(gateway: procs.Proc, storm: Storm) -> Figures:
    await asyncio.sleep(0.5)  # connections of the previous step are closed
    before = gateway.rss()
    with HealthzProbe() as probe:
        started = time.perf_counter()
        seen = await run_storm(storm)
        seconds = time.perf_counter() - started
    await asyncio.sleep(0.5)
    figures = Figures(storm.name, storm.count, seconds, before, gateway.rss(), probe.longest * 1000, dict(seen))
    print(f"{figures.name:34} {figures.requests:6} req {figures.seconds:6.1f} s  RSS {figures.rss_before_mib:6.0f} -> "
          f"{figures.rss_after_mib:6.0f} MiB  longest /healthz {figures.longest_healthz_ms:6.0f} ms  "
          f"{dict(sorted(seen.items()))}", flush=True)
    return figures


def storms(scale: float) -> list[Storm]:
    def n(count: int) -> int:
        return max(1, int(count * scale))

    mix = ("ok", "ok", "ok", "reset-before-headers", "ok", "reset-mid-body", "ok", "status-500", "ok", "timeout")
    return [
        Storm("warm-up (successes)", "ok", n(2000), 32),
        Storm("reset before headers", "reset-before-headers", n(20000), 64),
        Storm("reset mid-body", "reset-mid-body", n(20000), 64),
        Storm("timeout before first byte (50 ms)", "timeout", n(20000), 256),
        Storm("HTTP 500", "status-500", n(20000), 64),
        Storm("reset mid-stream", "reset-mid-stream", n(10000), 64, stream=True),
        *(Storm(f"8 x 30 MiB bodies, no reader ({i + 1}/3)", "never-reads", 8, 8, body_bytes=30 * 1024 * 1024)
          for i in range(3)),
        *(Storm(f"8 x 30 MiB bodies, reset before headers ({i + 1}/3)", "reset-before-headers", 8, 8,
                body_bytes=30 * 1024 * 1024) for i in range(3)),
        Storm("soak: 30% failures among successes", "", n(20000), 64, mix=mix),
        Storm("final successes", "ok", n(5000), 32),
    ]


async def bench(args: argparse.Namespace, workdir: Path) -> list[Figures]:
    async with MisbehavingUpstream() as upstream:
        upstream.server.keep_history = False
        upstream.by_model = {f"up-{kind}": fault for kind, (fault, _) in KINDS.items()}
        config = workdir / "config.json"
        config.write_text(json.dumps(gateway_config(upstream.url())))
        exe = targets.gateway_executable()
        if exe is None:
            sys.exit("needs modelgate-gateway (make run installs it)")
        env = {targets.UPSTREAM_KEY_ENV: UPSTREAM_KEY, "MODELGATE_SHUTDOWN_GRACE_SECONDS": "1"}
        if args.src:
            env["PYTHONPATH"] = args.src
        gateway = await asyncio.to_thread(
            procs.start, "gateway", [exe, "--config", str(config), "--port", str(GATEWAY_PORT), "--metrics-port", "0"],
            cpus=None, ready_port=GATEWAY_PORT, ready_path="/readyz", log=workdir / "gateway.log", env=env)
        results: list[Figures] = []
        try:
            print(f"gateway pid {gateway.popen.pid}, RSS {gateway.rss():.0f} MiB at start", flush=True)
            for storm in storms(args.scale):
                if args.only and not any(word in storm.name for word in args.only.split(",")):
                    continue
                upstream.fault = Fault.NEVER_READ if storm.model == "never-reads" else Fault.NONE
                results.append(await measure(gateway, storm))
        finally:
            gateway.stop()
        return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every request count (not the body storms)")
    parser.add_argument("--src", default=None, help="run the gateway from these sources (PYTHONPATH)")
    parser.add_argument("--only", default="", help="run only the storms whose names contain one of these words (a,b)")
    parser.add_argument("--out", default=str(targets.HERE / "results" / "faults.json"))
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="modelgate-faults-") as tmp:
        try:
            import uvloop
            results = uvloop.run(bench(args, Path(tmp)))
        except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
            results = asyncio.run(bench(args, Path(tmp)))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"scale": args.scale, "src": args.src or "this tree", "pid_cpu_count": os.cpu_count(),
                               "storms": [vars(f) for f in results]}, indent=2))
    print(f"written to {out}")


if __name__ == "__main__":
    main()
