"""Quick A/B of the gateway against the floor: a few cells, repeated, medians of the rounds.

For iterating on the hot path between full runs of ``run.py``: starts the fake upstream, the
floor and the gateway once (pinned like ``run.py``), then for ``--rounds`` rounds runs every cell
on both proxies back to back and reports, per cell, the medians over rounds of CPU per request
(``/proc/<pid>/task/*/schedstat``, ns resolution), p50 latency and p50 time to first delta, and
the gateway/floor CPU ratio. Added latency is against the floor, not direct (no direct runs here).
``--baseline-src DIR`` adds a second gateway importing ``modelgate_gateway`` from ``DIR`` (e.g. a
``git archive`` of the last commit): before and after a change, measured interleaved in one run.

    python bench/ab.py --rounds 3 --seconds 2 [--baseline-src /tmp/base/gateway/src] [--src DIR]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

import procs
import targets
from fake_upstream import run_fast
from loadgen import LoadSpec, make_template, run_load

CELLS = (("nonstream", 1), ("nonstream", 32), ("stream", 1), ("stream", 32))


def _measure(proc: procs.Proc, port: int, stream: bool, conc: int, seconds: float) -> dict[str, float]:
    tpl = make_template(port, "bench", stream=stream, expected_deltas=50 if stream else 0, api_key=targets.API_KEY)
    spec = LoadSpec(port, (tpl,), conc, 0.5, seconds)
    out: dict[str, float] = {}

    async def go() -> None:
        res = await run_load(spec, probe=proc.sched)
        cpu = res.probes[1] - res.probes[0]
        summary = res.summary()
        if summary["errors"]:
            sys.exit(f"errors: {summary['error_kinds']}")
        out.update(
            cpu_ms=cpu * 1000 / max(1, res.completed),
            p50=summary["p50_ms"],
            ttfd=summary.get("ttfd_p50_ms", 0.0),
            rps=summary["rps"],
        )

    run_fast(go())
    return out


def _start_baseline(
    exe: str, config: Path, ports: targets.Ports, logdir: Path, src: str, name: str = "baseline"
) -> procs.Proc:
    cmd = [exe, *targets.gateway_args(config, ports)]
    env = {targets.UPSTREAM_KEY_ENV: "sk-bench-upstream", "MODELGATE_SHUTDOWN_GRACE_SECONDS": "1", "PYTHONPATH": src}
    return procs.start(
        name,
        cmd,
        cpus={targets.PROXY_CPU},
        ready_port=ports.gateway,
        ready_path="/readyz",
        log=logdir / f"{name}.log",
        env=env,
    )


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=float, default=2.0)
    p.add_argument("--gateway-only", action="store_true")
    p.add_argument("--baseline-src", default=None, help="source dir of a baseline gateway")
    p.add_argument("--src", default=None, help="source dir of the gateway to measure (default: the installed one)")
    p.add_argument(
        "--cells",
        default=",".join(f"{m}:{c}" for m, c in CELLS),
        help="mode:concurrency,... (modes: nonstream, stream)",
    )
    args = p.parse_args(argv)
    exe = targets.gateway_executable()
    if exe is None:
        sys.exit("needs modelgate-gateway")
    os.sched_setaffinity(0, {targets.LOAD_CPU})
    ports = targets.Ports()
    rounds = max(1, min(args.rounds, 20))
    cells = [(m, int(c)) for m, _, c in (x.partition(":") for x in args.cells.split(","))]
    with tempfile.TemporaryDirectory(prefix="modelgate-ab-") as tmp:
        logdir = Path(tmp)
        config = targets.write_gateway_config(ports, str(logdir / "requests.log"), logdir)
        started = [targets.start_upstream(ports, 50, logdir)]
        try:
            if args.src:
                gateway = _start_baseline(exe, config, ports, logdir, args.src, name="gateway")
            else:
                gateway = targets.start_gateway(exe, config, ports, logdir)
            started.append(gateway)
            floor = None if args.gateway_only else targets.start_floor(ports, logdir)
            if floor is not None:
                started.append(floor)
            for proc in started:
                proc.refresh()
            print(f"gateway ready in {gateway.ready_s:.3f} s")
            runs = [("gateway", gateway, ports.gateway)]
            if args.baseline_src:
                base_ports = targets.Ports(gateway=18005, gateway_metrics=18006)
                base = _start_baseline(exe, config, base_ports, logdir, args.baseline_src)
                started.append(base)
                base.refresh()
                runs.append(("baseline", base, base_ports.gateway))
            if floor is not None:
                runs.append(("floor", floor, ports.floor))
            data: dict[tuple[str, int, str], list[dict[str, float]]] = {}
            for _ in range(rounds):
                for mode, conc in cells:
                    for name, proc, port in runs:
                        m = _measure(proc, port, mode == "stream", conc, args.seconds)
                        data.setdefault((mode, conc, name), []).append(m)
            rss = gateway.rss()
        finally:
            for proc in reversed(started):
                proc.stop()
    print(f"gateway RSS {rss:.1f} MiB")
    print(f"{'cell':16} {'target':8} {'cpu ms/req':>10} {'p50 ms':>8} {'ttfd p50':>8} {'req/s':>8}  ratio")
    for mode, conc in cells:
        med: dict[str, dict[str, float]] = {}
        for name, _, _ in runs:
            ms = data[(mode, conc, name)]
            med[name] = {k: statistics.median(m[k] for m in ms) for k in ms[0]}
        for name, m in med.items():
            ratio = ""
            if name != "floor" and "floor" in med:
                ratio = f"{m['cpu_ms'] / med['floor']['cpu_ms']:.2f}x"
            print(
                f"{mode + ' c=' + str(conc):16} {name:8} {m['cpu_ms']:10.4f} {m['p50']:8.3f} "
                f"{m['ttfd']:8.3f} {m['rps']:8.0f}  {ratio}"
            )


if __name__ == "__main__":
    main()
