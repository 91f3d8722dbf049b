"""Machine instructions per request, gateway against a baseline source tree: exact, whatever the load.

``callcount.py`` counts Python frames, but a change can cost CPU without adding frames: more
allocations, a C call that does more, a syscall, a timer. This runs each gateway under Valgrind's
callgrind with collection off, drives a warm-up, switches collection on (``callgrind_control -i
on``), drives ``--requests`` requests, switches it off and dumps. It prints instructions (Ir) per
request for both trees, and the functions (CPython, uvloop, orjson, the kernel-call wrappers,
...) whose exclusive instruction counts differ most. Instructions are not time (no cache misses,
no kernel time), but they are deterministic to well under 1%, so a 5% difference is real.

The gateway is ~50 times slower under callgrind: keep ``--requests`` in the hundreds.

    python bench/instrcount.py --baseline-src /tmp/base/gateway/src [--mode stream] [--requests 300]
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import procs
import targets
from callcount import _drive

WRAPPER = """
import sys
src = sys.argv[1]
if src != "-":
    sys.path.insert(0, src)
sys.argv = ["modelgate-gateway", *sys.argv[2:]]
from modelgate_gateway.main import entrypoint
entrypoint()
"""

_ROW = re.compile(r"^\s*([\d,]+)\s+\(\s*[\d.]+%\)\s+(.*)$")


def _control(pid: int, *args: str) -> None:
    subprocess.run(["callgrind_control", *args, str(pid)], check=True, capture_output=True, timeout=60)


def _profile(src: str, config: Path, logdir: Path, tag: str, *, stream: bool, count: int, conc: int) -> Path:
    wrapper = logdir / "wrapper.py"
    wrapper.write_text(WRAPPER)
    out = logdir / f"{tag}.callgrind"
    ports = targets.Ports()
    cmd = [
        "valgrind",
        "--tool=callgrind",
        "--instr-atstart=no",
        f"--callgrind-out-file={out}",
        targets.PYTHON,
        str(wrapper),
        src,
        "--config",
        str(config),
        "--host",
        "127.0.0.1",
        "--port",
        str(ports.gateway),
        "--metrics-port",
        str(ports.gateway_metrics),
    ]
    env = {targets.UPSTREAM_KEY_ENV: "sk-bench-upstream", "MODELGATE_SHUTDOWN_GRACE_SECONDS": "1"}
    proc = procs.start(
        tag,
        cmd,
        cpus=None,
        ready_port=ports.gateway,
        ready_path="/readyz",
        log=logdir / f"{tag}.log",
        env=env,
        timeout=300.0,
    )
    try:
        _drive(ports.gateway, stream, 100, conc)  # warm-up: pools, caches, first-call imports
        _control(proc.popen.pid, "-i", "on")
        _drive(ports.gateway, stream, count, conc)
        _control(proc.popen.pid, "-i", "off")
        _control(proc.popen.pid, "-d")
        time.sleep(1.0)
    finally:
        proc.stop()
    dumps = sorted(logdir.glob(f"{tag}.callgrind*"), key=lambda p: p.stat().st_mtime)
    return max(dumps, key=lambda p: p.stat().st_size)


def _functions(dump: Path) -> tuple[int, dict[str, int]]:
    text = subprocess.run(
        ["callgrind_annotate", "--threshold=100", "--auto=no", str(dump)],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    ).stdout
    total = 0
    rows: dict[str, int] = {}
    for line in text.splitlines():
        if "PROGRAM TOTALS" in line:
            total = int(line.split()[0].replace(",", ""))
            continue
        m = _ROW.match(line)
        if m:
            name = m.group(2).split(" [", 1)[0]
            name = re.sub(r"^/.*/", "", name)  # keep the file name, not its directory
            rows[name] = rows.get(name, 0) + int(m.group(1).replace(",", ""))
    return total, rows


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--baseline-src", required=True, help="gateway/src of the baseline (e.g. a git archive)")
    p.add_argument("--src", default=None, help="gateway/src to measure (default: this checkout's)")
    p.add_argument("--mode", choices=("nonstream", "stream"), default="nonstream")
    p.add_argument("--requests", type=int, default=300)
    p.add_argument("--concurrency", type=int, default=1)
    p.add_argument("--top", type=int, default=40)
    p.add_argument("--keep", default=None, help="copy both callgrind dumps into this directory")
    args = p.parse_args(argv)
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is not installed")
    count = max(50, min(args.requests, 20_000))
    with tempfile.TemporaryDirectory(prefix="modelgate-instrcount-") as tmp:
        logdir = Path(tmp)
        config = targets.write_gateway_config(targets.Ports(), str(logdir / "requests.log"), logdir)
        upstream = targets.start_upstream(targets.Ports(), 50, logdir)
        try:
            here = args.src or str(Path(__file__).resolve().parent.parent / "gateway" / "src")
            stream, conc = args.mode == "stream", max(1, min(args.concurrency, 256))
            dumps = {
                tag: _profile(src, config, logdir, tag, stream=stream, count=count, conc=conc)
                for tag, src in (("gateway", here), ("baseline", args.baseline_src))
            }
        finally:
            upstream.stop()
        results = {tag: _functions(dump) for tag, dump in dumps.items()}
        if args.keep:
            Path(args.keep).mkdir(parents=True, exist_ok=True)
            for tag, dump in dumps.items():
                shutil.copy(dump, Path(args.keep) / f"{tag}.callgrind")
    for tag, (total, _) in results.items():
        print(f"{args.mode} {tag:8}: {total / count / 1000:9.1f} k instructions per request")
    new, base = results["gateway"][1], results["baseline"][1]
    print(f"{'kIr/req':>9}  function (gateway - baseline, exclusive)")
    diffs = {name: (new.get(name, 0) - base.get(name, 0)) / count / 1000 for name in set(new) | set(base)}
    for name, diff in sorted(diffs.items(), key=lambda kv: -abs(kv[1]))[: args.top]:
        print(f"{diff:+9.2f}  {name}")


if __name__ == "__main__":
    main()
