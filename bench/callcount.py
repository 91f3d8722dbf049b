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

import os
import pstats
import shutil
import signal
from pathlib import Path

import counting
import procs
import targets

WRAPPER = (
    counting.IMPORT_SRC
    + """
import cProfile, signal
out = sys.argv[2]
sys.argv = ["modelgate-gateway", *sys.argv[3:]]
profile = cProfile.Profile()
signal.signal(signal.SIGUSR1, lambda *_: profile.enable())
def _stop(*_):
    profile.disable()
    profile.dump_stats(out)
signal.signal(signal.SIGUSR2, _stop)
"""
    + counting.RUN_GATEWAY
)

Key = tuple[str, int, str]


def _profile(src: str, config: Path, logdir: Path, tag: str, load: counting.Load) -> dict[Key, tuple[int, float]]:
    wrapper = logdir / "wrapper.py"
    wrapper.write_text(WRAPPER)
    out = logdir / f"{tag}.prof"

    def stop(proc: procs.Proc) -> None:
        os.kill(proc.popen.pid, signal.SIGUSR2)
        counting.wait_for(out, 30)

    cmd = counting.gateway_command([targets.PYTHON, str(wrapper), src, str(out)], config)
    counting.counted(tag, cmd, logdir, load, on=lambda proc: os.kill(proc.popen.pid, signal.SIGUSR1), off=stop)
    stats = pstats.Stats(str(out))
    # (calls, own seconds) per function; times are load-sensitive, calls are not
    return {func: (int(row[1]), float(row[2])) for func, row in stats.stats.items()}  # type: ignore[attr-defined]


def _name(func: Key) -> str:
    """``function (module file)``: no directory and no line, so a moved or edited module still matches."""
    file, line, name = func
    return f"{name} ({Path(file).name})" if line else name


def main(argv: list[str] | None = None) -> None:
    p = counting.parser(__doc__, requests=2000, top=30)
    p.add_argument("--keep", default=None, help="copy both cProfile dumps into this directory")
    args = p.parse_args(argv)
    load = counting.load_of(args, least=100, most=100_000)
    count = load.count

    def measure(src: str, config: Path, logdir: Path, tag: str) -> dict[Key, tuple[int, float]]:
        profile = _profile(src, config, logdir, tag, load)
        if args.keep:
            Path(args.keep).mkdir(parents=True, exist_ok=True)
            shutil.copy(logdir / f"{tag}.prof", Path(args.keep) / f"{tag}.prof")
        return profile

    profiles = counting.both(args, "callcount", measure)
    new, base = profiles["gateway"], profiles["baseline"]
    for label, profile in profiles.items():
        # Python frames cost far more than calls into C (a builtin, a method of dict or str): both shown.
        python = sum(c for (_, line, _), (c, _) in profile.items() if line) / count
        builtin = sum(c for (_, line, _), (c, _) in profile.items() if not line) / count
        own = sum(t for _, t in profile.values()) * 1e6 / count
        print(
            f"{args.mode} {label:8}: {python:6.1f} Python calls + {builtin:6.1f} into C per request, "
            f"{own:7.1f} us/request under the profiler"
        )
    calls: dict[str, float] = {}
    times: dict[str, float] = {}
    zero = (0, 0.0)
    for func in set(new) | set(base):
        name = _name(func)
        calls[name] = calls.get(name, 0.0) + (new.get(func, zero)[0] - base.get(func, zero)[0]) / count
        times[name] = times.get(name, 0.0) + (new.get(func, zero)[1] - base.get(func, zero)[1]) * 1e6 / count
    print(f"{'calls/req':>10} {'us/req':>8}  function (gateway - baseline; us are load-sensitive)")
    for name, us_diff in counting.top_diffs(times, args.top):
        if abs(calls[name]) >= 0.01 or abs(us_diff) >= 0.05:
            print(f"{calls[name]:+10.2f} {us_diff:+8.2f}  {name}")


if __name__ == "__main__":
    main()
