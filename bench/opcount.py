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

import json
import os
import re
import signal
from collections import Counter
from pathlib import Path
from typing import Any

import counting
import procs
import targets

WRAPPER = (
    counting.IMPORT_SRC
    + """
import collections, json, os, signal
out = sys.argv[2]
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
    os.replace(out + ".tmp", out)

signal.signal(signal.SIGUSR1, _on)
signal.signal(signal.SIGUSR2, _off)
"""
    + counting.RUN_GATEWAY
)


def _trace(src: str, config: Path, logdir: Path, tag: str, load: counting.Load) -> dict[str, Any]:
    wrapper = logdir / "opwrapper.py"
    wrapper.write_text(WRAPPER)
    out = logdir / f"{tag}.json"

    def stop(proc: procs.Proc) -> None:
        os.kill(proc.popen.pid, signal.SIGUSR2)
        counting.wait_for(out, 60)

    cmd = counting.gateway_command([targets.PYTHON, str(wrapper), src, str(out)], config)
    counting.counted(tag, cmd, logdir, load, on=lambda proc: os.kill(proc.popen.pid, signal.SIGUSR1), off=stop)
    data: dict[str, Any] = json.loads(out.read_text())
    return data


def _key(row: list[Any], by: str) -> str:
    file, name = row[0], row[2]
    match = re.search(r"modelgate_gateway/(.*)", file)
    module = match.group(1) if match else re.sub(r".*/(site-packages|python3\.\d+)/", "", file)
    return str(module) if by == "module" else f"{name} ({Path(file).name})"


def main(argv: list[str] | None = None) -> None:
    p = counting.parser(__doc__, requests=300, top=40)
    p.add_argument("--by", choices=("function", "module"), default="function")
    args = p.parse_args(argv)
    load = counting.load_of(args, least=50, most=50_000)
    count = load.count
    traced = counting.both(args, "opcount", lambda src, config, logdir, tag: _trace(src, config, logdir, tag, load))
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
    for name, diff in counting.top_diffs(diffs, args.top):
        print(f"{diff:+8.1f} {new[name] / count:8.1f}  {name}")


if __name__ == "__main__":
    main()
