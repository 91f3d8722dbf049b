"""Processes under test: start (pinned), wait for ready, read CPU and RSS from /proc, stop.

CPU is utime+stime of ``/proc/<pid>/stat`` summed over the process and its descendants (so
``--workers N`` counts all workers); RSS is ``VmRSS`` of ``/proc/<pid>/status``, summed likewise.
Each process runs in its own session, so stopping it signals exactly its process group.
"""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")


def children_map() -> dict[int, list[int]]:
    """ppid -> [pid] for every process visible in /proc."""
    out: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_bytes()
        except OSError:
            continue
        ppid = int(stat[stat.rfind(b")") + 2 :].split()[1])
        out.setdefault(ppid, []).append(int(entry.name))
    return out


def tree(root: int) -> list[int]:
    """``root`` and all its descendants."""
    kids = children_map()
    pids, todo = [], [root]
    while todo and len(pids) < 10_000:
        pid = todo.pop()
        pids.append(pid)
        todo.extend(kids.get(pid, ()))
    return pids


def cpu_seconds(pids: Sequence[int]) -> float:
    """utime + stime of ``pids`` in seconds (processes that are gone count 0)."""
    ticks = 0
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_bytes()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2 :].split()
        ticks += int(fields[11]) + int(fields[12])  # fields 14 and 15 of proc(5)
    return ticks / CLK_TCK


def sched_seconds(pids: Sequence[int]) -> float:
    """Time on CPU of every thread of ``pids`` from ``/proc/<pid>/task/*/schedstat`` (ns exact).

    utime+stime are sampled in clock ticks (10 ms); this is the high-resolution cross-check.
    Threads that already exited are not counted.
    """
    ns = 0
    for pid in pids:
        try:
            tasks = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tasks:
            try:
                ns += int(Path(f"/proc/{pid}/task/{tid}/schedstat").read_bytes().split()[0])
            except (OSError, IndexError, ValueError):
                continue
    return ns / 1e9


def core_busy() -> list[float]:
    """Busy seconds of each core since boot (user+nice+system+irq+softirq+steal), /proc/stat."""
    out = []
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("cpu") and line[3:4].isdigit():
            f = [int(x) for x in line.split()[1:9]]
            out.append((f[0] + f[1] + f[2] + f[5] + f[6] + f[7]) / CLK_TCK)
    return out


def rss_mib(pids: Sequence[int]) -> float:
    """Sum of VmRSS of ``pids`` in MiB."""
    kib = 0
    for pid in pids:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                kib += int(line.split()[1])
                break
    return kib / 1024


def http_status(port: int, path: str, timeout: float = 1.0) -> int:
    """Status of ``GET http://127.0.0.1:port/path``; 0 when nothing answers."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        resp.read()
        return resp.status
    except OSError:
        return 0
    finally:
        conn.close()


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    ready_s: float = 0.0
    pids: list[int] = field(default_factory=list)

    def refresh(self) -> None:
        self.pids = tree(self.popen.pid)

    def cpu(self) -> float:
        return cpu_seconds(self.pids)

    def sched(self) -> float:
        return sched_seconds(self.pids)

    def rss(self) -> float:
        return rss_mib(self.pids)

    def log_tail(self, n: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def stop(self, timeout: float = 8.0) -> None:
        if self.popen.poll() is not None:
            return
        os.killpg(self.popen.pid, signal.SIGTERM)  # its own session: only this process group
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(5)


def start(
    name: str,
    cmd: Sequence[str],
    *,
    cpus: set[int] | None,
    ready_port: int,
    ready_path: str,
    log: Path,
    env: dict[str, str] | None = None,
    timeout: float = 20.0,
) -> Proc:
    """Start ``cmd`` pinned to ``cpus`` and return once ``ready_path`` answers 200.

    ``ready_s`` is the time from spawning to the first 200 (polled every 2 ms).
    """

    out = log.open("wb")
    t0 = time.perf_counter()
    popen = subprocess.Popen(
        list(cmd),
        stdout=out,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
        start_new_session=True,
    )
    # Before the interpreter has started any thread; its children inherit it. None = every core
    # (not this process's own pinning, which a child would otherwise inherit).
    os.sched_setaffinity(popen.pid, cpus if cpus is not None else range(os.cpu_count() or 1))
    out.close()
    proc = Proc(name, popen, log)
    deadline = t0 + timeout
    while time.perf_counter() < deadline:
        if http_status(ready_port, ready_path, timeout=0.5) == 200:
            proc.ready_s = time.perf_counter() - t0
            time.sleep(0.2)  # let --workers children come up too
            proc.refresh()
            return proc
        if popen.poll() is not None:
            break
        time.sleep(0.002)
    proc.stop()
    raise RuntimeError(f"{name} did not become ready on :{ready_port}{ready_path}\n{proc.log_tail()}")
