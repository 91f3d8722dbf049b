"""Added cost of budgets and rate limits: one gateway, one Redis, a key without limits vs one with all.

Both keys are measured interleaved against the same gateway process (pinned like ``run.py``):
``free`` has no limits (the hot path pays one dict lookup), ``limited`` has a budget, RPM, TPM and
a concurrency limit set far above the load, so every request runs the reserve script before it
goes upstream and the reconcile script after its answer (carried by a later admission's pipeline,
or sent after 20 ms). Reported per cell: gateway CPU per request, Redis CPU per request, Redis
round trips per request (pipelines and lone calls, from Redis's own count of client reads), script
calls per request, p50 latency and time to first delta (medians over rounds).

    python bench/governance.py --rounds 3 --seconds 2

Against other code (e.g. main before a change), run it with that tree first on the path:
``PYTHONPATH=/tmp/base/gateway/src python bench/governance.py``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis

import procs
import targets
from fake_upstream import run_fast
from loadgen import LoadSpec, make_template, run_load

KEYS = {"free": "sk-bench-free-0123456789", "limited": "sk-bench-limited-0123456789"}
LIMITS = {
    "requestsPerMinute": 100_000_000,
    "tokensPerMinute": 10_000_000_000,
    "maxConcurrentRequests": 100_000,
    "budget": {"usd": 1_000_000, "window": "total"},
}
CELLS = (("nonstream", 1), ("nonstream", 32), ("stream", 32))


def _redis_cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/schedstat") as fh:
        return int(fh.read().split()[0]) / 1e9


def _start_redis(port: int, workdir: Path) -> subprocess.Popen[bytes]:
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(workdir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.sched_setaffinity(proc.pid, {targets.LOAD_CPU})
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return proc
        except OSError:
            time.sleep(0.02)
    proc.kill()
    sys.exit("redis-server did not start")


def _redis_counts(client: redis.Redis) -> tuple[int, int]:
    """(reads of client requests, script calls) so far: Redis reads a pipeline in one go."""
    stats = client.info("stats")
    scripts = client.info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0)
    return int(stats.get("total_reads_processed", 0)), int(scripts)


def _config(ports: targets.Ports, redis_port: int, logdir: Path) -> Path:
    doc = targets.gateway_config(ports.upstream, str(logdir / "requests.log"))
    spec = doc["spec"]
    assert isinstance(spec, dict)
    spec["auth"] = {
        "keys": [
            {"name": "free", "sha256": hashlib.sha256(KEYS["free"].encode()).hexdigest()},
            {"name": "limited", "sha256": hashlib.sha256(KEYS["limited"].encode()).hexdigest(), "limits": LIMITS},
        ]
    }
    spec["state"] = {"redisUrl": f"redis://127.0.0.1:{redis_port}/0"}
    path = logdir / "gateway-governance.json"
    path.write_text(json.dumps(doc))
    return path


def _measure(
    proc: procs.Proc,
    redis_pid: int,
    counter: redis.Redis,
    port: int,
    key: str,
    *,
    stream: bool,
    conc: int,
    seconds: float,
) -> dict[str, float]:
    tpl = make_template(port, "bench", stream=stream, expected_deltas=50 if stream else 0, api_key=KEYS[key])
    out: dict[str, float] = {}

    def probe() -> tuple[float, float, tuple[int, int]]:
        """At the measured window's two ends (warm-up excluded): gateway CPU, Redis CPU, Redis counts."""
        return proc.sched(), _redis_cpu_seconds(redis_pid), _redis_counts(counter)

    async def go() -> None:
        res = await run_load(LoadSpec(port, (tpl,), conc, 0.5, seconds), probe=probe)
        (cpu0, redis0, (reads0, scripts0)), (cpu1, redis1, (reads1, scripts1)) = res.probes
        summary = res.summary()
        if summary["errors"]:
            sys.exit(f"errors: {summary['error_kinds']}")
        n = max(1, res.completed)
        out.update(
            cpu_ms=(cpu1 - cpu0) * 1000 / n,
            redis_ms=(redis1 - redis0) * 1000 / n,
            trips=max(0, reads1 - reads0 - 2) / n,  # minus the count's own two INFO reads
            scripts=(scripts1 - scripts0) / n,
            p50=summary["p50_ms"],
            ttfd=summary.get("ttfd_p50_ms", 0.0),
            rps=summary["rps"],
        )

    run_fast(go())
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=float, default=2.0)
    args = p.parse_args(argv)
    exe = targets.gateway_executable()
    if exe is None:
        sys.exit("needs modelgate-gateway")
    os.sched_setaffinity(0, {targets.LOAD_CPU})
    ports = targets.Ports()
    redis_port = 18079
    data: dict[tuple[str, int, str], list[dict[str, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="modelgate-gov-") as tmp:
        logdir = Path(tmp)
        redis_proc = _start_redis(redis_port, logdir)
        counter = redis.Redis(port=redis_port, socket_timeout=5)
        started = [targets.start_upstream(ports, 50, logdir)]
        try:
            gateway = targets.start_gateway(exe, _config(ports, redis_port, logdir), ports, logdir)
            started.append(gateway)
            for proc in started:
                proc.refresh()
            for _ in range(max(1, min(args.rounds, 20))):
                for mode, conc in CELLS:
                    for key in KEYS:
                        m = _measure(
                            gateway,
                            redis_proc.pid,
                            counter,
                            ports.gateway,
                            key,
                            stream=mode == "stream",
                            conc=conc,
                            seconds=args.seconds,
                        )
                        data.setdefault((mode, conc, key), []).append(m)
        finally:
            for proc in reversed(started):
                proc.stop()
            counter.close()
            redis_proc.terminate()
            redis_proc.wait(5)
    print(
        f"{'cell':16} {'key':8} {'gw cpu ms/req':>13} {'redis ms/req':>12} {'trips/req':>9} {'scripts/req':>11} "
        f"{'p50 ms':>8} {'ttfd p50':>8} {'req/s':>8}"
    )
    for mode, conc in CELLS:
        for key in KEYS:
            ms = data[(mode, conc, key)]
            m = {k: statistics.median(x[k] for x in ms) for k in ms[0]}
            print(
                f"{mode + ' c=' + str(conc):16} {key:8} {m['cpu_ms']:13.4f} {m['redis_ms']:12.4f} {m['trips']:9.2f} "
                f"{m['scripts']:11.2f} {m['p50']:8.3f} {m['ttfd']:8.3f} {m['rps']:8.0f}"
            )


if __name__ == "__main__":
    main()
