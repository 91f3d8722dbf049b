"""Python bytecodes executed per request, per function, gateway against a baseline source tree.

``callcount.py`` counts Python calls; a function that got longer without calling more does not
show there. This traces every executed bytecode (``sys.settrace`` with ``f_trace_opcodes``),
switched on (SIGUSR1) after a warm-up and off (SIGUSR2, which dumps) after ``--requests``
requests, for this checkout and ``--baseline-src``, and prints bytecodes per request for both and
the functions whose counts differ most (matched by name and file name, so a function that moved
between modules shows twice: once gone, once new). Exact whatever the load; the tracer makes the
gateway ~20 times slower, which only stretches the run. ``--by module`` sums per module instead.

    python bench/opcount.py --baseline-src /tmp/base/gateway/src [--mode stream] [--requests 300]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import tempfile
import time
from collections import Counter
from pathlib import Path

import procs
import targets
from callcount import _drive

WRAPPER = """
import collections, json, signal, sys
src, out = sys.argv[1], sys.argv[2]
if src != "-":
    sys.path.insert(0, src)
sys.argv = ["modelgate-gateway", *sys.argv[3:]]
ops = collections.Counter()
calls = collections.Counter()

def _local(frame, event, arg):
    if event == "opcode":
        code = frame.f_code
        ops[(code.co_filename, code.co_firstlineno, code.co_name)] += 1
    return _local

def _global(frame, event, arg):
    code = frame.f_code
    calls[(code.co_filename, code.co_firstlineno, code.co_name)] += 1
    frame.f_trace_opcodes = True
    return _local

def _on(*_):
    sys.settrace(_global)

def _off(*_):
    sys.settrace(None)
    rows = {"ops": [[*k, v] for k, v in ops.items()], "calls": [[*k, v] for k, v in calls.items()]}
    with open(out + ".tmp", "w") as f:
        json.dump(rows, f)
    import os
    os.replace(out + ".tmp", out)

signal.signal(signal.SIGUSR1, _on)
signal.signal(signal.SIGUSR2, _off)
from modelgate_gateway.main import entrypoint
entrypoint()
"""

Row = tuple[str, int, str]


def _trace(src: str, config: Path, logdir: Path, tag: str, *, stream: bool, count: int, conc: int) -> dict[str, list]:
    wrapper = logdir / "opwrapper.py"
    wrapper.write_text(WRAPPER)
    out = logdir / f"{tag}.json"
    ports = targets.Ports()
    cmd = [targets.PYTHON, str(wrapper), src, str(out), "--config", str(config), "--host", "127.0.0.1"]
    cmd += ["--port", str(ports.gateway), "--metrics-port", str(ports.gateway_metrics)]
    env = {targets.UPSTREAM_KEY_ENV: "sk-bench-upstream", "MODELGATE_SHUTDOWN_GRACE_SECONDS": "1"}
    proc = procs.start(
        tag, cmd, cpus=None, ready_port=ports.gateway, ready_path="/readyz", log=logdir / f"{tag}.log", env=env
    )
    try:
        _drive(ports.gateway, stream, 100, conc)  # warm-up: pools, caches, first-call imports
        os.kill(proc.popen.pid, signal.SIGUSR1)
        _drive(ports.gateway, stream, count, conc)
        os.kill(proc.popen.pid, signal.SIGUSR2)
        deadline = time.monotonic() + 60
        while not out.exists() and time.monotonic() < deadline:
            time.sleep(0.05)  # poll for the dump the signal asked for
    finally:
        proc.stop()
    data: dict[str, list] = json.loads(out.read_text())
    return data


def _key(row: list, by: str) -> str:
    file, _, name = row[0], row[1], row[2]
    match = re.search(r"modelgate_gateway/(.*)", file)
    module = match.group(1) if match else re.sub(r".*/(site-packages|python3\.\d+)/", "", file)
    return module if by == "module" else f"{name} ({Path(file).name})"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--baseline-src", required=True, help="gateway/src of the baseline (e.g. a git archive)")
    p.add_argument("--src", default=None, help="gateway/src to measure (default: this checkout's)")
    p.add_argument("--mode", choices=("nonstream", "stream"), default="nonstream")
    p.add_argument("--requests", type=int, default=300)
    p.add_argument("--concurrency", type=int, default=1)
    p.add_argument("--by", choices=("function", "module"), default="function")
    p.add_argument("--top", type=int, default=40)
    args = p.parse_args(argv)
    count = max(50, min(args.requests, 50_000))
    with tempfile.TemporaryDirectory(prefix="modelgate-opcount-") as tmp:
        logdir = Path(tmp)
        config = targets.write_gateway_config(targets.Ports(), str(logdir / "requests.log"), logdir)
        upstream = targets.start_upstream(targets.Ports(), 50, logdir)
        try:
            here = args.src or str(Path(__file__).resolve().parent.parent / "gateway" / "src")
            stream, conc = args.mode == "stream", max(1, min(args.concurrency, 256))
            traced = {
                tag: _trace(src, config, logdir, tag, stream=stream, count=count, conc=conc)
                for tag, src in (("gateway", here), ("baseline", args.baseline_src))
            }
        finally:
            upstream.stop()
    ops: dict[str, Counter[str]] = {}
    for tag, data in traced.items():
        ops[tag] = Counter()
        for row in data["ops"]:
            ops[tag][_key(row, args.by)] += row[-1]
        calls = sum(row[-1] for row in data["calls"]) / count
        print(
            f"{args.mode} {tag:8}: {sum(ops[tag].values()) / count:8.1f} bytecodes, "
            f"{calls:6.1f} Python calls per request"
        )
    new, base = ops["gateway"], ops["baseline"]
    print(f"{'diff':>8} {'gateway':>8}  {args.by} (bytecodes per request, gateway - baseline)")
    diffs = {name: (new[name] - base[name]) / count for name in set(new) | set(base)}
    for name, diff in sorted(diffs.items(), key=lambda kv: -abs(kv[1]))[: args.top]:
        print(f"{diff:+8.1f} {new[name] / count:8.1f}  {name}")


if __name__ == "__main__":
    main()
