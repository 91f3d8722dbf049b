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

import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import counting
import procs
import targets

WRAPPER = counting.IMPORT_SRC + 'sys.argv = ["modelgate-gateway", *sys.argv[2:]]\n' + counting.RUN_GATEWAY

_ROW = re.compile(r"^\s*([\d,]+)\s+\(\s*[\d.]+%\)\s+(.*)$")


def _control(pid: int, *args: str) -> None:
    subprocess.run(["callgrind_control", *args, str(pid)], check=True, capture_output=True, timeout=60)


def _profile(src: str, config: Path, logdir: Path, tag: str, load: counting.Load) -> Path:
    wrapper = logdir / "wrapper.py"
    wrapper.write_text(WRAPPER)
    out = logdir / f"{tag}.callgrind"

    def stop(proc: procs.Proc) -> None:
        _control(proc.popen.pid, "-i", "off")
        _control(proc.popen.pid, "-d")
        time.sleep(1.0)  # let the dump finish before the process is stopped

    valgrind = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}"]
    cmd = counting.gateway_command([*valgrind, targets.PYTHON, str(wrapper), src], config)

    def start(proc: procs.Proc) -> None:
        _control(proc.popen.pid, "-i", "on")

    counting.counted(tag, cmd, logdir, load, on=start, off=stop, ready_timeout=300.0)
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
    p = counting.parser(__doc__, requests=300, top=40)
    p.add_argument("--keep", default=None, help="copy both callgrind dumps into this directory")
    args = p.parse_args(argv)
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is not installed")
    load = counting.load_of(args, least=50, most=20_000)
    count = load.count

    def measure(src: str, config: Path, logdir: Path, tag: str) -> tuple[int, dict[str, int]]:
        dump = _profile(src, config, logdir, tag, load)
        if args.keep:
            Path(args.keep).mkdir(parents=True, exist_ok=True)
            shutil.copy(dump, Path(args.keep) / f"{tag}.callgrind")
        return _functions(dump)

    results = counting.both(args, "instrcount", measure)
    for tag, (total, _) in results.items():
        print(f"{args.mode} {tag:8}: {total / count / 1000:9.1f} k instructions per request")
    new, base = results["gateway"][1], results["baseline"][1]
    print(f"{'kIr/req':>9}  function (gateway - baseline, exclusive)")
    diffs = {name: (new.get(name, 0) - base.get(name, 0)) / count / 1000 for name in set(new) | set(base)}
    for name, diff in counting.top_diffs(diffs, args.top):
        print(f"{diff:+9.2f}  {name}")


if __name__ == "__main__":
    main()
