"""Run the benchmark matrix and write bench/results/latest.{md,json,png}.

    python bench/run.py            # full matrix, ~6 minutes
    python bench/run.py --quick    # shorter windows and soak, ~2 minutes

Targets: ``direct`` (the fake upstream itself), ``floor`` (bare aiohttp pass-through, run twice per
cell as ``floor`` and ``floor-repeat`` to show the run's noise) and ``gateway`` (modelgate-gateway
with every feature on; skipped with a note when it is not installed). Modes: non-streaming,
streaming at zero delay, streaming paced at 20 ms per token. Concurrency 1, 16, 64, 128. The
proxy under test is pinned to core 0; the fake upstream and this process (the load generator) to
core 1. Targets are interleaved inside every cell so drift hits all of them alike.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import procs
import report
import targets
from fake_upstream import run_fast
from loadgen import LoadSpec, Runner, make_template, run_load

RESULTS = targets.HERE / "results"
MODES: dict[str, tuple[str, bool]] = {  # name -> (model, stream)
    "nonstream": ("bench", False),
    "stream": ("bench", True),
    "paced": ("paced-20", True),
}


@dataclass(frozen=True)
class Plan:
    concurrency: tuple[int, ...] = (1, 16, 64, 128)
    warmup_s: float = 0.6
    measure_s: float = 3.0
    paced_warmup_s: float = 1.6  # > one 1 s stream, so every connection is past its first
    paced_measure_s: float = 4.0
    soak_requests: int = 50_000
    soak_concurrency: int = 64
    workers_measure_s: float = 3.0
    deltas: int = 50
    max_settle_s: float = 2.0  # per cell: wait at most this long for other load to pass


QUICK = Plan(
    warmup_s=0.3,
    measure_s=1.0,
    paced_warmup_s=1.1,
    paced_measure_s=1.2,
    soak_requests=10_000,
    workers_measure_s=1.2,
    max_settle_s=0.5,
)


@dataclass
class Target:
    name: str
    port: int
    proc: procs.Proc | None  # None: direct


class Bench:
    def __init__(self, plan: Plan, upstream: procs.Proc, api_key: str) -> None:
        self.plan, self.upstream, self.api_key = plan, upstream, api_key

    async def settle(self) -> float:
        """Wait (bounded) until other work on the machine is below 15% of each core."""
        waited, step = 0.0, 0.25
        while waited < self.plan.max_settle_s:
            before = procs.core_busy()
            await asyncio.sleep(step)
            waited += step
            busy = [b - a for a, b in zip(before, procs.core_busy(), strict=True)]
            if max(busy, default=0.0) / step < 0.15:
                break
        return waited

    async def cell(self, target: Target, mode: str, conc: int, repeat: str = "") -> dict[str, Any]:
        """One (target, mode, concurrency) measurement."""
        settled = await self.settle()
        plan, model_stream = self.plan, MODES[mode]
        paced = mode == "paced"
        model, stream = model_stream
        tpl = make_template(
            target.port, model, stream=stream, expected_deltas=plan.deltas if stream else 0, api_key=self.api_key
        )
        spec = LoadSpec(
            target.port,
            (tpl,),
            conc,
            plan.paced_warmup_s if paced else plan.warmup_s,
            plan.paced_measure_s if paced else plan.measure_s,
            stagger_s=1.0 if paced else 0.0,
        )
        proc = target.proc
        if proc:
            proc.refresh()
        res = await run_load(spec, lambda: self.counters(proc))
        d = {k: res.probes[1][k] - res.probes[0][k] for k in res.probes[0]}
        n, window = max(res.completed, 1), d["t"]
        row: dict[str, Any] = {"target": target.name + repeat, "mode": mode, "concurrency": conc}
        row.update(res.summary())
        row["settle_wait_s"] = settled
        row["proxy_cpu_ms_per_req"] = round(d["proxy"] * 1000 / n, 4) if proc else None
        row["proxy_cpu_ms_per_req_sched"] = round(d["proxy_sched"] * 1000 / n, 4) if proc else None
        row["proxy_cpu_util"] = round(d["proxy"] / window, 3) if proc else None
        row["upstream_cpu_ms_per_req"] = round(d["upstream"] * 1000 / n, 4)
        row["loadgen_cpu_ms_per_req"] = round(d["loadgen"] * 1000 / n, 4)
        row["proxy_rss_mib"] = round(proc.rss(), 1) if proc else None
        # Other work on the machine during the window (other processes, steal), per core.
        row["foreign_core0"] = round(max(d["core0"] - d["proxy"], 0) / window, 3)
        row["foreign_core1"] = round(max(d["core1"] - d["upstream"] - d["loadgen"], 0) / window, 3)
        return row

    def counters(self, proc: procs.Proc | None) -> dict[str, float]:
        busy = [*procs.core_busy(), 0.0, 0.0]
        return {
            "t": time.perf_counter(),
            "proxy": proc.cpu() if proc else 0.0,
            "proxy_sched": proc.sched() if proc else 0.0,
            "upstream": self.upstream.cpu(),
            "loadgen": time.process_time(),
            "core0": busy[0],
            "core1": busy[1],
        }

    async def matrix(self, order: list[Target]) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        k = 0
        for mode in MODES:
            for conc in self.plan.concurrency:
                runs = [(t, "") for t in order]
                runs += [(t, "-repeat") for t in order if t.name == "floor"]
                runs = runs[k % len(runs) :] + runs[: k % len(runs)]  # rotate: no fixed first slot
                k += 1
                for target, repeat in runs:
                    row = await self.cell(target, mode, conc, repeat)
                    rows.append(row)
                    print(report.progress_line(row), flush=True)
        return rows

    async def soak(self, target: Target) -> dict[str, Any]:
        """RSS over ``soak_requests`` requests (half JSON, half streams) on a fresh process."""
        assert target.proc is not None
        tpls = tuple(
            make_template(
                target.port,
                "bench",
                stream=stream,
                expected_deltas=self.plan.deltas if stream else 0,
                api_key=self.api_key,
            )
            for stream in (False, True)
        )
        spec = LoadSpec(target.port, tpls, self.plan.soak_concurrency, 0.0, 600.0, max_requests=self.plan.soak_requests)
        runner = Runner(spec, None)
        samples: list[tuple[int, float]] = [(0, target.proc.rss())]

        async def sample() -> None:
            while True:
                await asyncio.sleep(0.25)
                samples.append((runner.res.done, target.proc.rss() if target.proc else 0.0))

        sampler = asyncio.ensure_future(sample())
        res = await runner.run()
        sampler.cancel()
        samples.append((res.done, target.proc.rss()))
        half = next(rss for done, rss in samples if done >= res.done / 2)
        return {
            "target": target.name,
            "requests": res.done,
            "errors": sum(res.errors.values()),
            "error_kinds": res.errors,
            "rps": round(res.rps, 1),
            "rss_start_mib": round(samples[0][1], 1),
            "rss_half_mib": round(half, 1),
            "rss_end_mib": round(samples[-1][1], 1),
            "rss_growth_second_half_mib": round(samples[-1][1] - half, 1),
            "cpu_s": round(target.proc.cpu(), 2),
        }

    async def throughput(self, target: Target, mode: str, conc: int) -> dict[str, Any]:
        plan = self.plan
        model, stream = MODES[mode]
        tpl = make_template(
            target.port, model, stream=stream, expected_deltas=plan.deltas if stream else 0, api_key=self.api_key
        )
        spec = LoadSpec(target.port, (tpl,), conc, plan.warmup_s, plan.workers_measure_s)
        proc = target.proc
        if proc:
            proc.refresh()
        res = await run_load(spec, lambda: proc.cpu() if proc else 0.0)
        cpu = res.probes[1] - res.probes[0]
        return {
            "target": target.name,
            "mode": mode,
            "concurrency": conc,
            "rps": round(res.rps, 1),
            "p50_ms": res.summary().get("p50_ms"),
            "cpu_ms_per_req": round(cpu * 1000 / max(res.completed, 1), 4),
            "cores_used": round(cpu / res.window_s, 2) if res.window_s else None,
            "processes": len(proc.pids) if proc else 0,
            "errors": sum(res.errors.values()),
        }


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="short windows (~2 minutes)")
    p.add_argument("--no-gateway", action="store_true", help="direct and floor only")
    p.add_argument("--gateway-exe", default=None, help="modelgate-gateway executable")
    p.add_argument(
        "--request-log", default=None, help="gateway request log path (default: a temp file, removed afterwards)"
    )
    p.add_argument("--out", type=Path, default=RESULTS, help="results directory")
    p.add_argument(
        "--docs",
        default=str(targets.HERE.parent / "docs" / "performance.md"),
        help="rewrite the marked results block of this file ('' to skip)",
    )
    p.add_argument("--skip-soak", action="store_true")
    p.add_argument("--skip-workers", action="store_true")
    return p.parse_args(argv)


async def _steps(args: argparse.Namespace, meta: dict[str, Any], workdir: Path) -> dict[str, Any]:
    plan: Plan = QUICK if args.quick else Plan()
    ports, logdir = targets.Ports(), args.out / "logs"
    logdir.mkdir(parents=True, exist_ok=True)
    exe = None if args.no_gateway else (args.gateway_exe or targets.gateway_executable())
    meta["gateway"] = exe or "not run: modelgate-gateway missing or --help failed"
    request_log = args.request_log or str(workdir / "requests.log")
    config = targets.write_gateway_config(ports, request_log, workdir)
    meta["gateway_config_validation"] = targets.validate_config(targets.gateway_config(ports.upstream, request_log))
    meta["request_log"] = request_log if args.request_log else "temp file (deleted after the run)"
    running: list[procs.Proc] = []
    out: dict[str, Any] = {"plan": asdict(plan)}
    try:
        upstream = targets.start_upstream(ports, plan.deltas, logdir)
        running.append(upstream)
        bench = Bench(plan, upstream, targets.API_KEY)
        floor = targets.start_floor(ports, logdir)
        running.append(floor)
        order = [Target("direct", ports.upstream, None), Target("floor", ports.floor, floor)]
        startup = {"floor": [round(floor.ready_s, 3)], "gateway": []}
        if exe:
            gw = targets.start_gateway(exe, config, ports, logdir)
            running.append(gw)
            startup["gateway"].append(round(gw.ready_s, 3))
            order.append(Target("gateway", ports.gateway, gw))
        out["cells"] = await bench.matrix(order)
        if exe:
            out["gateway_checks"] = report.gateway_sanity(ports.gateway_metrics, request_log, out["cells"])
        for proc in running[1:]:
            proc.stop()
        del running[1:]
        if not args.skip_soak:
            out["soak"] = await _soak(bench, exe, config, ports=ports, logdir=logdir, startup=startup)
        if not args.skip_workers:
            out["workers"] = await _workers(bench, exe, config, ports=ports, logdir=logdir, startup=startup)
        out["startup_s"] = startup
    finally:
        for proc in reversed(running):
            proc.stop()
    return out


async def _soak(
    bench: Bench, exe: str | None, config: Path, *, ports: targets.Ports, logdir: Path, startup: dict[str, list[float]]
) -> dict[str, Any]:
    if exe:
        proc, port, name = targets.start_gateway(exe, config, ports, logdir, tag="-soak"), ports.gateway, "gateway"
    else:
        proc, port, name = targets.start_floor(ports, logdir), ports.floor, "floor"
    startup[name].append(round(proc.ready_s, 3))
    try:
        return await bench.soak(Target(name, port, proc))
    finally:
        proc.stop()


async def _workers(
    bench: Bench, exe: str | None, config: Path, *, ports: targets.Ports, logdir: Path, startup: dict[str, list[float]]
) -> list[dict[str, Any]]:
    rows = []
    for workers in (1, 2):
        if exe:
            proc = targets.start_gateway(exe, config, ports, logdir, workers=workers, pinned=False)
            target = Target(f"gateway-w{workers}", ports.gateway, proc)
            startup["gateway"].append(round(proc.ready_s, 3))
        else:
            proc = targets.start_floor(ports, logdir, workers=workers, pinned=False)
            target = Target(f"floor-w{workers}", ports.floor, proc)
        try:
            for mode in ("nonstream", "stream"):
                rows.append(await bench.throughput(target, mode, 128))
                print(f"  workers {target.name:12} {mode:9} {rows[-1]['rps']:>9} req/s", flush=True)
        finally:
            proc.stop()
    return rows


def main(argv: list[str] | None = None) -> None:
    args = _parse(argv)
    os.sched_setaffinity(0, {targets.LOAD_CPU})
    args.out.mkdir(parents=True, exist_ok=True)
    meta: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "quick": args.quick,
        "python": sys.version.split()[0],
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "pinning": "proxy core 0; upstream + loadgen core 1",
    }
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="modelgate-bench-") as tmp:
        result: dict[str, Any] = {}

        async def go() -> None:
            result.update(await _steps(args, meta, Path(tmp)))

        run_fast(go())
    meta["runtime_s"] = round(time.perf_counter() - started, 1)
    written = report.write_all({"meta": meta, **result}, args.out, Path(args.docs) if args.docs else None)
    print("\n".join(f"wrote {p}" for p in written))


if __name__ == "__main__":
    main()
