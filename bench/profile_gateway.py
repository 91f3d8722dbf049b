"""Where does the gateway spend its CPU? Sample it with py-spy under benchmark load.

Starts the fake upstream (core 1) and the gateway (core 0) with the benchmark config, drives one
mode at one concurrency from this process (core 1), records the gateway with ``py-spy record
--format raw`` and prints the top functions by self and inclusive share of the samples, and the
share by source file. Needs py-spy (``pip install py-spy``) and ptrace rights.

    python bench/profile_gateway.py --mode stream --concurrency 64 --seconds 10
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

import targets
from fake_upstream import run_fast
from loadgen import LoadSpec, make_template, run_load

FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^():]+)(?::\d+)?\)$")
# Leaf frames of threads that are only waiting (request-log writer, executor workers).
IDLE_FILES = ("threading.py", "concurrent/futures/thread.py", "queue.py", "selectors.py")
MODES = {"nonstream": ("bench", False), "stream": ("bench", True), "paced": ("paced-20", True)}


def _short(path: str) -> str:
    for marker in ("site-packages/", "modelgate_gateway/", "lib/python3"):
        if marker in path:
            return path[path.index(marker) :]
    return path


def summarise(raw: str, top: int) -> str:
    """Top functions by self / inclusive share and files by self share of py-spy raw output."""
    self_c: Counter[str] = Counter()
    incl_c: Counter[str] = Counter()
    file_c: Counter[str] = Counter()
    total = idle = 0
    for line in raw.splitlines():
        stack, _, count_s = line.rpartition(" ")
        if not stack or not count_s.isdigit():
            continue
        count = int(count_s)
        if stack.rsplit(";", 1)[-1].split(" (")[-1].startswith(IDLE_FILES):
            idle += count
            continue
        total += count
        names = []
        for frame in stack.split(";"):
            m = FRAME.match(frame)
            names.append((f"{m['func']} ({_short(m['file'])})", _short(m["file"])) if m else (frame, frame))
        self_c[names[-1][0]] += count
        file_c[names[-1][1]] += count
        for name in {n for n, _ in names}:
            incl_c[name] += count
    if not total:
        return "no samples"

    def table(title: str, counter: Counter[str]) -> list[str]:
        return [f"\n{title}"] + [f"  {c / total * 100:5.1f}%  {name}" for name, c in counter.most_common(top)]

    packages: Counter[str] = Counter()
    for name, c in file_c.items():
        packages[name.split("/")[0]] += c
    head = f"{total} busy samples ({idle} idle-thread samples left out)"
    return "\n".join(
        [
            head,
            *table("self time by package", packages),
            *table("self time by function", self_c),
            *table("inclusive time by function", incl_c),
            *table("self time by file", file_c),
        ]
    )


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--mode", choices=list(MODES), default="stream")
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--rate", type=int, default=200, help="py-spy samples per second")
    p.add_argument("--top", type=int, default=25)
    p.add_argument("--out", type=Path, default=targets.HERE / "results" / "profile")
    args = p.parse_args(argv)
    pyspy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    exe = targets.gateway_executable()
    if exe is None or not Path(pyspy).exists():
        sys.exit("needs modelgate-gateway and py-spy")
    import os

    os.sched_setaffinity(0, {targets.LOAD_CPU})
    args.out.mkdir(parents=True, exist_ok=True)
    ports = targets.Ports()
    seconds = min(args.seconds, 120.0)
    with tempfile.TemporaryDirectory(prefix="modelgate-profile-") as tmp:
        config = targets.write_gateway_config(ports, str(Path(tmp) / "requests.log"), Path(tmp))
        upstream = targets.start_upstream(ports, 50, args.out)
        try:
            gateway = targets.start_gateway(exe, config, ports, args.out)
            try:
                raw = _record(pyspy, gateway.popen.pid, args, seconds, ports)
            finally:
                gateway.stop()
        finally:
            upstream.stop()
    (args.out / f"{args.mode}-c{args.concurrency}.txt").write_text(raw)
    print(summarise(raw, args.top))


def _record(pyspy: str, pid: int, args: argparse.Namespace, seconds: float, ports: targets.Ports) -> str:
    model, stream = MODES[args.mode]
    tpl = make_template(
        ports.gateway, model, stream=stream, expected_deltas=50 if stream else 0, api_key=targets.API_KEY
    )
    raw_path = args.out / "raw.txt"
    spy = subprocess.Popen(
        [
            pyspy,
            "record",
            "--pid",
            str(pid),
            "--rate",
            str(args.rate),
            "--duration",
            str(int(seconds)),
            "--format",
            "raw",
            "-o",
            str(raw_path),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    spec = LoadSpec(ports.gateway, (tpl,), args.concurrency, 0.5, seconds + 1.0)
    result: dict[str, object] = {}

    async def go() -> None:
        result.update((await run_load(spec)).summary())

    run_fast(go())
    _, err = spy.communicate(timeout=60)
    print(f"load: {result.get('rps')} req/s, errors {result.get('errors')}", file=sys.stderr)
    if spy.returncode:
        sys.exit(f"py-spy failed: {err.decode(errors='replace')[-400:]}")
    return raw_path.read_text()


if __name__ == "__main__":
    main()
