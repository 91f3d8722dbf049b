"""Closed-loop load generator: a raw asyncio HTTP/1.1 keep-alive client on uvloop.

aiohttp's client costs ~0.2 ms of CPU per request, too much to drive thousands of requests per
second from the one core it shares with the fake upstream; this client parses just enough
HTTP/1.1 (Content-Length and chunked bodies) and costs a few tens of microseconds per request.

``concurrency`` connections each send a request, wait for the whole answer, check it, and send the
next. Only requests that complete inside the measurement window (after ``warmup_s``) count
towards latency and throughput; ``probe`` is called at the window's two ends so the caller can read
CPU counters at exactly the right instants. Every answer is checked: status 200; a JSON body that
parses as a completed Response; a stream whose last event is ``response.completed`` with usage and
that carried the expected number of ``response.output_text.delta`` events.

    python bench/loadgen.py --port 18001 --stream --concurrency 16 --measure 3
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

import orjson

DELTA_MARK = b"output_text.delta"
DELTA_TYPE = b'"response.output_text.delta"'


@dataclass(frozen=True)
class RequestTemplate:
    wire: bytes  # the whole HTTP request
    stream: bool
    expected_deltas: int  # 0: do not check the count


def make_template(
    port: int,
    model: str,
    *,
    stream: bool,
    expected_deltas: int,
    api_key: str | None,
    path: str = "/v1/responses",
) -> RequestTemplate:
    body = orjson.dumps(
        {
            "model": model,
            "input": "Write a haiku about load balancers.",
            "stream": stream,
            "max_output_tokens": 256,
        }
    )
    lines = [
        f"POST {path} HTTP/1.1",
        f"Host: 127.0.0.1:{port}",
        "Content-Type: application/json",
        "Accept: " + ("text/event-stream" if stream else "application/json"),
        f"Content-Length: {len(body)}",
    ]
    if api_key:
        lines.append(f"Authorization: Bearer {api_key}")
    wire = "\r\n".join(lines).encode() + b"\r\n\r\n" + body
    return RequestTemplate(wire, stream, expected_deltas)


def check(status: int, body: bytes, tpl: RequestTemplate) -> str | None:
    """None if the answer is a good one, else a short error class."""
    if status != 200:
        return f"status {status}"
    return _check_stream(body, tpl.expected_deltas) if tpl.stream else _check_json(body)


def _check_json(body: bytes) -> str | None:
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError:
        return "body not JSON"
    ok = isinstance(obj, dict) and obj.get("status") == "completed" and obj.get("output")
    return None if ok else "response not completed"


def _check_stream(body: bytes, expected_deltas: int) -> str | None:
    idx = body.rfind(b"data:")
    try:
        last = orjson.loads(body[idx + 5 :]) if idx >= 0 else None
    except orjson.JSONDecodeError:
        return "last event not JSON"
    if not isinstance(last, dict) or last.get("type") != "response.completed":
        return "stream does not end with response.completed"
    usage = (last.get("response") or {}).get("usage")
    if not isinstance(usage, dict) or "output_tokens" not in usage:
        return "response.completed without usage"
    if expected_deltas and body.count(DELTA_TYPE) != expected_deltas:
        return "wrong number of deltas"
    return None


class Answer:
    __slots__ = ("body", "keep_alive", "status", "t_first")

    def __init__(self, status: int, body: bytes, t_first: float, keep_alive: bool) -> None:
        self.status, self.body, self.t_first, self.keep_alive = status, body, t_first, keep_alive


class Conn(asyncio.Protocol):
    """One keep-alive connection that runs one request at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.fut: asyncio.Future[Answer] | None = None
        self.stream = False
        self.t_first = 0.0
        self.status = 0
        self.mode = ""  # "" head pending, "cl", "chunked", "eof"
        self.need = 0
        self.body = bytearray()
        self.keep_alive = True
        self.timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self.mode == "eof" and self.fut is not None:
            self._finish(bytes(self.buf))
        elif self.fut is not None and not self.fut.done():
            self.fut.set_exception(ConnectionError("connection closed mid-answer"))

    def request(self, wire: bytes, stream: bool, timeout: float) -> asyncio.Future[Answer]:
        assert self.transport is not None
        loop = asyncio.get_running_loop()
        self.fut = loop.create_future()
        self.stream, self.t_first, self.status, self.mode = stream, 0.0, 0, ""
        self.body = bytearray()
        self.timer = loop.call_later(timeout, self._timeout)
        self.transport.write(wire)
        return self.fut

    def _timeout(self) -> None:
        if self.fut is not None and not self.fut.done():
            self.fut.set_exception(TimeoutError("request timed out"))
        self.close()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.abort()
            self.transport = None

    def data_received(self, data: bytes) -> None:
        if self.stream and not self.t_first and DELTA_MARK in data:
            self.t_first = time.perf_counter()
        self.buf += data
        if self.fut is None:
            self.close()  # bytes nobody asked for
            return
        if not self.mode and not self._head():
            return
        if self.mode == "cl" and len(self.buf) >= self.need:
            body = bytes(self.buf[: self.need])
            del self.buf[: self.need]
            self._finish(body)
        elif self.mode == "chunked":
            self._chunks()

    def _head(self) -> bool:
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return False
        head = bytes(self.buf[:end]).lower()
        del self.buf[: end + 4]
        self.status = int(head[9:12])
        self.keep_alive = b"\r\nconnection: close" not in head and head.startswith(b"http/1.1")
        cl = head.find(b"\r\ncontent-length:")
        if cl >= 0:
            nl = head.find(b"\r\n", cl + 2)
            self.mode, self.need = "cl", int(head[cl + 17 : nl if nl >= 0 else None])
        elif b"\r\ntransfer-encoding: chunked" in head:
            self.mode = "chunked"
        else:
            self.mode = "eof"
            self.keep_alive = False
        return True

    def _chunks(self) -> None:
        buf, pos = self.buf, 0
        while True:
            nl = buf.find(b"\r\n", pos)
            if nl < 0:
                break
            size = int(bytes(buf[pos:nl]).split(b";")[0], 16)
            if size == 0:
                if len(buf) < nl + 4:
                    break
                del buf[: nl + 4]
                self._finish(bytes(self.body))
                return
            if len(buf) < nl + size + 4:
                break
            self.body += buf[nl + 2 : nl + 2 + size]
            pos = nl + size + 4
        del buf[:pos]

    def _finish(self, body: bytes) -> None:
        fut, self.fut, self.mode = self.fut, None, ""
        if self.timer is not None:
            self.timer.cancel()
        if fut is not None and not fut.done():
            fut.set_result(Answer(self.status, body, self.t_first, self.keep_alive))


@dataclass
class LoadSpec:
    port: int
    templates: tuple[RequestTemplate, ...]
    concurrency: int
    warmup_s: float
    measure_s: float
    max_requests: int = 1_000_000  # hard bound on requests issued
    timeout_s: float = 30.0
    host: str = "127.0.0.1"
    stagger_s: float = 0.0  # connection i starts after i/concurrency of this


@dataclass
class LoadResult:
    window_s: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    ttfd_ms: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)  # whole run, not just the window
    issued: int = 0
    done: int = 0
    probes: list[Any] = field(default_factory=list)

    @property
    def completed(self) -> int:
        return len(self.latencies_ms)

    @property
    def rps(self) -> float:
        return self.completed / self.window_s if self.window_s > 0 else 0.0

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"requests": self.completed, "rps": round(self.rps, 1), "answered": self.done}
        out.update({f"{k}_ms": v for k, v in percentiles(self.latencies_ms).items()})
        if self.ttfd_ms:
            out.update({f"ttfd_{k}_ms": v for k, v in percentiles(self.ttfd_ms).items()})
        out["errors"] = sum(self.errors.values())
        out["error_kinds"] = dict(self.errors)
        return out


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    s = sorted(values)
    n = len(s)
    return {f"p{q}": round(s[min(n - 1, int(q / 100 * n))], 3) for q in (50, 90, 99)}


class Runner:
    def __init__(self, spec: LoadSpec, probe: Callable[[], Any] | None) -> None:
        self.spec, self.probe = spec, probe
        self.res = LoadResult()
        now = time.perf_counter()
        self.t_start = now + spec.warmup_s
        self.t_end = self.t_start + spec.measure_s

    def _error(self, kind: str) -> None:
        self.res.errors[kind] = self.res.errors.get(kind, 0) + 1

    async def _connect(self) -> Conn:
        loop = asyncio.get_running_loop()
        _, conn = await loop.create_connection(Conn, self.spec.host, self.spec.port)
        return conn

    async def worker(self, first: int) -> None:
        spec, res = self.spec, self.res
        templates, i, conn = spec.templates, first, None
        if spec.stagger_s:
            await asyncio.sleep(first * spec.stagger_s / spec.concurrency)
        while res.issued < spec.max_requests and time.perf_counter() < self.t_end:
            tpl = templates[i % len(templates)]
            i += 1
            res.issued += 1
            try:
                if conn is None or conn.transport is None:
                    conn = await self._connect()
                t0 = time.perf_counter()
                answer = await conn.request(tpl.wire, tpl.stream, spec.timeout_s)
            except (OSError, TimeoutError) as exc:
                self._error(type(exc).__name__)
                if conn is not None:
                    conn.close()
                conn = None
                await asyncio.sleep(0.01)
                continue
            t1 = time.perf_counter()
            res.done += 1
            problem = check(answer.status, answer.body, tpl)
            if problem:
                self._error(problem)
            elif self.t_start <= t1 <= self.t_end:
                res.latencies_ms.append((t1 - t0) * 1000)
                if tpl.stream:
                    res.ttfd_ms.append(((answer.t_first or t1) - t0) * 1000)
            if not answer.keep_alive:
                conn.close()
                conn = None
        if conn is not None:
            conn.close()

    async def run(self) -> LoadResult:
        loop = asyncio.get_running_loop()
        starter = loop.call_later(self.spec.warmup_s, self._probe_start)
        workers = [asyncio.ensure_future(self.worker(i)) for i in range(self.spec.concurrency)]
        ender = loop.call_later(self.spec.warmup_s + self.spec.measure_s, self._probe_end)
        await asyncio.gather(*workers)
        starter.cancel()
        ender.cancel()
        if not self.res.probes:
            self._probe_start()
        if len(self.res.probes) < 2:  # request budget ran out before the window closed
            self._probe_end()
        return self.res

    def _probe_start(self) -> None:
        self.t_start = time.perf_counter()
        self.res.probes.append(self.probe() if self.probe else None)

    def _probe_end(self) -> None:
        now = time.perf_counter()
        self.t_end = min(self.t_end, now)
        self.res.window_s = self.t_end - self.t_start
        self.res.probes.append(self.probe() if self.probe else None)


async def run_load(spec: LoadSpec, probe: Callable[[], Any] | None = None) -> LoadResult:
    """Run one load step; ``probe()`` is sampled at the start and end of the window."""
    return await Runner(spec, probe).run()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=18001)
    parser.add_argument("--model", default="bench")
    parser.add_argument("--stream", action="store_true")
    parser.add_argument("--deltas", type=int, default=50, help="expected deltas; 0 = unchecked")
    parser.add_argument("--api-key", default="sk-modelgate-quickstart")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--warmup", type=float, default=0.5)
    parser.add_argument("--measure", type=float, default=3.0)
    parser.add_argument("--max-requests", type=int, default=1_000_000)
    parser.add_argument("--cpu", type=int, default=None, help="pin to one core")
    args = parser.parse_args(argv)
    if args.cpu is not None:
        import os

        os.sched_setaffinity(0, {args.cpu})
    tpl = make_template(
        args.port,
        args.model,
        stream=args.stream,
        expected_deltas=args.deltas if args.stream else 0,
        api_key=args.api_key,
    )
    spec = LoadSpec(args.port, (tpl,), args.concurrency, args.warmup, min(args.measure, 600.0), args.max_requests)
    start_cpu = time.process_time()
    from fake_upstream import run_fast

    out: dict[str, Any] = {}

    async def go() -> None:
        out.update((await run_load(spec)).summary())

    run_fast(go())
    out["loadgen_cpu_s"] = round(time.process_time() - start_cpu, 3)
    print(orjson.dumps(out, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
