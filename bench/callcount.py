"""Python function calls per request, gateway against a baseline source tree: an A/B load cannot skew.

CPU-time A/Bs (``ab.py``) need a quiet machine. Function-call counts do not: this starts the fake
upstream and, one after the other, the gateway from this checkout and from ``--baseline-src``,
each under ``cProfile`` switched on (SIGUSR1) only after a warm-up, drives ``--requests``
requests (``--concurrency`` at a time, default 1), switches it off (SIGUSR2, which also dumps
the stats), and prints calls per request for both and the functions whose call counts differ
most. A change that adds calls on the hot path shows here with exact numbers, whatever else the
machine is doing.

    python bench/callcount.py --baseline-src /tmp/base/gateway/src [--mode stream] [--requests 2000]
"""

from __future__ import annotations

import argparse
import os
import pstats
import signal
import sys
import tempfile
import time
from pathlib import Path

import procs
import targets
from fake_upstream import run_fast
from loadgen import LoadSpec, make_template, run_load

WRAPPER = """
import cProfile, signal, sys
src, out = sys.argv[1], sys.argv[2]
if src != "-":
    sys.path.insert(0, src)
sys.argv = ["modelgate-gateway", *sys.argv[3:]]
profile = cProfile.Profile()
signal.signal(signal.SIGUSR1, lambda *_: profile.enable())
def _stop(*_):
    profile.disable()
    profile.dump_stats(out)
signal.signal(signal.SIGUSR2, _stop)
from modelgate_gateway.main import entrypoint
entrypoint()
"""

Key = tuple[str, int, str]


def _drive(port: int, stream: bool, count: int, concurrency: int = 1) -> None:
    tpl = make_template(port, "bench", stream=stream, expected_deltas=50 if stream else 0, api_key=targets.API_KEY)

    async def go() -> None:
        spec = LoadSpec(port, (tpl,), concurrency, 0.0, 3600.0, max_requests=count)
        res = await run_load(spec)
        if res.summary()["errors"]:
            sys.exit(f"errors: {res.summary()['error_kinds']}")

    run_fast(go())


def _profile(
    src: str, config: Path, logdir: Path, tag: str, stream: bool, count: int, *, concurrency: int = 1
) -> dict[Key, tuple[int, float]]:
    wrapper = logdir / "wrapper.py"
    wrapper.write_text(WRAPPER)
    out = logdir / f"{tag}.prof"
    ports = targets.Ports()
    cmd = [targets.PYTHON, str(wrapper), src, str(out), "--config", str(config), "--host", "127.0.0.1"]
    cmd += ["--port", str(ports.gateway), "--metrics-port", str(ports.gateway_metrics)]
    env = {targets.UPSTREAM_KEY_ENV: "sk-bench-upstream", "MODELGATE_SHUTDOWN_GRACE_SECONDS": "1"}
    proc = procs.start(
        tag, cmd, cpus=None, ready_port=ports.gateway, ready_path="/readyz", log=logdir / f"{tag}.log", env=env
    )
    try:
        _drive(ports.gateway, stream, 200)  # warm-up: connection pools, caches, first-call imports
        os.kill(proc.popen.pid, signal.SIGUSR1)
        _drive(ports.gateway, stream, count, concurrency)
        os.kill(proc.popen.pid, signal.SIGUSR2)
        deadline = time.monotonic() + 30
        while not out.exists() and time.monotonic() < deadline:
            time.sleep(0.05)  # poll for the dump the signal asked for
    finally:
        proc.stop()
    stats = pstats.Stats(str(out))
    # (calls, own seconds) per function; times are load-sensitive, calls are not
    return {func: (int(row[1]), float(row[2])) for func, row in stats.stats.items()}  # type: ignore[attr-defined]


def _name(func: Key) -> str:
    """``function (module file)``: no directory and no line, so a moved or edited module still matches."""
    file, line, name = func
    return f"{name} ({Path(file).name})" if line else name


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--baseline-src", required=True, help="gateway/src of the baseline (e.g. a git archive)")
    p.add_argument("--src", default=None, help="gateway/src to measure (default: this checkout's)")
    p.add_argument("--mode", choices=("nonstream", "stream"), default="nonstream")
    p.add_argument("--requests", type=int, default=2000)
    p.add_argument("--concurrency", type=int, default=1)
    p.add_argument("--top", type=int, default=30)
    p.add_argument("--keep", default=None, help="copy both cProfile dumps into this directory")
    args = p.parse_args(argv)
    count = max(100, min(args.requests, 100_000))
    with tempfile.TemporaryDirectory(prefix="modelgate-callcount-") as tmp:
        logdir = Path(tmp)
        config = targets.write_gateway_config(targets.Ports(), str(logdir / "requests.log"), logdir)
        upstream = targets.start_upstream(targets.Ports(), 50, logdir)
        try:
            here = args.src or str(Path(__file__).resolve().parent.parent / "gateway" / "src")
            stream, conc = args.mode == "stream", max(1, min(args.concurrency, 256))
            new = _profile(here, config, logdir, "gateway", stream, count, concurrency=conc)
            base = _profile(args.baseline_src, config, logdir, "baseline", stream, count, concurrency=conc)
        finally:
            upstream.stop()
        if args.keep:
            Path(args.keep).mkdir(parents=True, exist_ok=True)
            for tag in ("gateway", "baseline"):
                (Path(args.keep) / f"{tag}.prof").write_bytes((logdir / f"{tag}.prof").read_bytes())
    for label, profile in (("gateway", new), ("baseline", base)):
        # Python frames cost far more than calls into C (a builtin, a method of dict or str): both shown.
        python = sum(c for (_, line, _), (c, _) in profile.items() if line) / count
        builtin = sum(c for (_, line, _), (c, _) in profile.items() if not line) / count
        own = sum(t for _, t in profile.values()) * 1e6 / count
        print(
            f"{args.mode} {label:8}: {python:6.1f} Python calls + {builtin:6.1f} into C per request, "
            f"{own:7.1f} us/request under the profiler"
        )
    diffs: dict[str, list[float]] = {}
    zero = (0, 0.0)
    for func in set(new) | set(base):
        row = diffs.setdefault(_name(func), [0.0, 0.0])
        row[0] += (new.get(func, zero)[0] - base.get(func, zero)[0]) / count
        row[1] += (new.get(func, zero)[1] - base.get(func, zero)[1]) * 1e6 / count
    print(f"{'calls/req':>10} {'us/req':>8}  function (gateway - baseline; us are load-sensitive)")
    for name, (calls_diff, us_diff) in sorted(diffs.items(), key=lambda kv: -abs(kv[1][1]))[: args.top]:
        if abs(calls_diff) >= 0.01 or abs(us_diff) >= 0.05:
            print(f"{calls_diff:+10.2f} {us_diff:+8.2f}  {name}")


if __name__ == "__main__":
    main()
