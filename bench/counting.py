"""What the exact counters (``callcount.py``, ``opcount.py``, ``instrcount.py``) share.

Each measures two source trees one after the other against one fake upstream: start a gateway
from the tree (wrapped in a profiler, a tracer or Valgrind), drive a warm-up, switch counting on,
drive the measured requests, switch it off and collect. Only the wrapper, the switch and the
report differ. Counting is exact whatever the load, so these need no quiet machine.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import procs
import targets
from fake_upstream import run_fast
from loadgen import LoadSpec, make_template, run_load

T = TypeVar("T")
HERE_SRC = str(Path(__file__).resolve().parent.parent / "gateway" / "src")
GATEWAY_ENV = {targets.UPSTREAM_KEY_ENV: "sk-bench-upstream", "MODELGATE_SHUTDOWN_GRACE_SECONDS": "1"}
IMPORT_SRC = """
import sys
src = sys.argv[1]
if src != "-":
    sys.path.insert(0, src)
"""
"""A wrapper's first lines: ``argv[1]`` is the tree to import ``modelgate_gateway`` from."""
RUN_GATEWAY = """
from modelgate_gateway.main import entrypoint
entrypoint()
"""
"""A wrapper's last lines, after ``sys.argv`` was set to the gateway's own arguments."""


@dataclass(frozen=True, slots=True)
class Load:
    """The measured requests: mode, how many, how many at a time."""

    stream: bool
    count: int
    concurrency: int


def parser(doc: str, *, requests: int, top: int) -> argparse.ArgumentParser:
    """The arguments every counter takes; a counter adds its own."""
    p = argparse.ArgumentParser(description=doc.split("\n\n", 1)[0])
    p.add_argument("--baseline-src", required=True, help="gateway/src of the baseline (e.g. a git archive)")
    p.add_argument("--src", default=None, help="gateway/src to measure (default: this checkout's)")
    p.add_argument("--mode", choices=("nonstream", "stream"), default="nonstream")
    p.add_argument("--requests", type=int, default=requests)
    p.add_argument("--concurrency", type=int, default=1)
    p.add_argument("--top", type=int, default=top)
    return p


def load_of(args: argparse.Namespace, *, least: int, most: int) -> Load:
    return Load(args.mode == "stream", max(least, min(args.requests, most)), max(1, min(args.concurrency, 256)))


def drive(port: int, stream: bool, count: int, concurrency: int = 1) -> None:
    """``count`` requests, ``concurrency`` at a time; exits on any failed answer."""
    tpl = make_template(port, "bench", stream=stream, expected_deltas=50 if stream else 0, api_key=targets.API_KEY)

    async def go() -> None:
        spec = LoadSpec(port, (tpl,), concurrency, 0.0, 3600.0, max_requests=count)
        res = await run_load(spec)
        if res.summary()["errors"]:
            sys.exit(f"errors: {res.summary()['error_kinds']}")

    run_fast(go())


def gateway_command(prefix: Iterable[str], config: Path) -> list[str]:
    """``prefix`` (the wrapper and its own arguments) and the gateway's arguments on the bench ports."""
    return [*prefix, *targets.gateway_args(config, targets.Ports())]


def counted(
    tag: str,
    cmd: list[str],
    logdir: Path,
    load: Load,
    *,
    on: Callable[[procs.Proc], None],
    off: Callable[[procs.Proc], None],
    ready_timeout: float = 20.0,
) -> None:
    """Start ``cmd``, warm it up, and count ``load`` between ``on`` and ``off``; stopped after."""
    port = targets.Ports().gateway
    proc = procs.start(
        tag,
        cmd,
        cpus=None,
        ready_port=port,
        ready_path="/readyz",
        log=logdir / f"{tag}.log",
        env=GATEWAY_ENV,
        timeout=ready_timeout,
    )
    try:
        drive(port, load.stream, 100, load.concurrency)  # warm-up: connection pools, caches, first-call imports
        on(proc)
        drive(port, load.stream, load.count, load.concurrency)
        off(proc)
    finally:
        proc.stop()


def wait_for(path: Path, seconds: float) -> None:
    """Poll for a dump the gateway writes when counting is switched off."""
    deadline = time.monotonic() + seconds
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.05)


def both(args: argparse.Namespace, prefix: str, measure: Callable[[str, Path, Path, str], T]) -> dict[str, T]:
    """``measure(src, config, logdir, tag)`` for this checkout (``gateway``) and the baseline, with
    one fake upstream; ``logdir`` is removed after, so ``measure`` returns what it read."""
    with tempfile.TemporaryDirectory(prefix=f"modelgate-{prefix}-") as tmp:
        logdir = Path(tmp)
        config = targets.write_gateway_config(targets.Ports(), str(logdir / "requests.log"), logdir)
        upstream = targets.start_upstream(targets.Ports(), 50, logdir)
        try:
            trees = (("gateway", args.src or HERE_SRC), ("baseline", args.baseline_src))
            return {tag: measure(src, config, logdir, tag) for tag, src in trees}
        finally:
            upstream.stop()


def top_diffs(diffs: dict[str, float], top: int) -> list[tuple[str, float]]:
    """The ``top`` largest differences by size, largest first."""
    return sorted(diffs.items(), key=lambda kv: -abs(kv[1]))[:top]
