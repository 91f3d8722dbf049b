"""Shutdown within one bound: drain in-flight requests for the grace period, then cut the rest.

aiohttp's own graceful shutdown (``runner.cleanup`` with ``shutdown_timeout``) waits up to the
timeout for handlers to finish and then, per connection, up to the timeout *again* after asking
them to stop (which a streaming handler does not notice), rounding each wait up to whole
seconds: a 3 s grace cut streams at 6 s, 8 s at 17 s. And what it finally does is cancel the
handler, which the relay cannot tell from a client that went away.

So the gateway drains itself before aiohttp's cleanup runs: :class:`InFlight` knows every
request being handled (the endpoint decorator enters and leaves it, two dict operations per
request); :func:`drain` stops accepting, waits until they are done or the grace period is over,
then marks each remaining record ``cut_by_shutdown`` and cancels its task. Handlers see the mark
and answer truthfully: a stream ends with a ``response.failed`` event, a request that has sent
nothing yet gets a 503 (which the OpenAI SDKs retry, reaching another replica), and the log line
says ``gateway_shutdown``, not ``client_disconnected``. aiohttp's cleanup then finds nothing left
to wait for. The whole shutdown ends within ``grace + SHUTDOWN_OVERRUN_SECONDS``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from ..observability.recording import RequestRecord
from .clientconn import ConnectionGuard

log = logging.getLogger("modelgate.gateway")

CUT_SECONDS = 1.0
"""After the grace period: time the cut requests get to write their last event or 503."""
CLEANUP_TIMEOUT_SECONDS = 0.5
"""aiohttp's per-connection shutdown wait (used twice) once nothing is in flight any more."""
SHUTDOWN_OVERRUN_SECONDS = 3.0
"""The process exits at most this long after the grace period (cut, cleanup, log flush).
The chart's terminationGracePeriodSeconds margin must be at least this (a chart test checks)."""


class InFlight:
    """The handler tasks of the requests being served, with their records."""

    __slots__ = ("_idle", "_tasks")

    def __init__(self) -> None:
        self._tasks: dict[asyncio.Task[Any], RequestRecord] = {}
        self._idle: asyncio.Event | None = None

    def __len__(self) -> int:
        return len(self._tasks)

    def enter(self, record: RequestRecord) -> asyncio.Task[Any] | None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks[task] = record
        return task

    def leave(self, task: asyncio.Task[Any] | None) -> None:
        if task is not None and self._tasks.pop(task, None) is not None:
            idle = self._idle
            if idle is not None and not self._tasks:
                idle.set()

    async def wait_idle(self, seconds: float) -> bool:
        """True once nothing is in flight; False when ``seconds`` passed first."""
        if not self._tasks:
            return True
        idle = self._idle = asyncio.Event()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(idle.wait(), max(seconds, 0.0))
        return not self._tasks

    def cut(self) -> int:
        """Mark every request in flight as cut by the shutdown and cancel its handler."""
        cut = list(self._tasks.items())
        for task, record in cut:
            record.cut_by_shutdown = True
            task.cancel()
        return len(cut)


async def drain(inflight: InFlight, grace_seconds: float, stop_accepting: Callable[[], Awaitable[None]],
                cleanup: Callable[[], Awaitable[None]]) -> None:
    """Stop accepting, wait for in-flight requests up to the grace period, cut the rest, clean up."""
    started = time.monotonic()
    await stop_accepting()
    if not await inflight.wait_idle(grace_seconds - (time.monotonic() - started)):
        count = inflight.cut()
        log.warning("grace period of %.0fs over: cutting %d requests still in flight", grace_seconds, count)
        if not await inflight.wait_idle(CUT_SECONDS):
            log.warning("%d cut requests did not finish within %.1fs; closing their connections",
                        len(inflight), CUT_SECONDS)
    try:
        await asyncio.wait_for(cleanup(), SHUTDOWN_OVERRUN_SECONDS - CUT_SECONDS)
    except TimeoutError:
        log.warning("shutdown clean-up did not finish in time; exiting anyway")
    log.info("drained in %.1fs", time.monotonic() - started)


def stopper(runner: web.BaseRunner, guard: ConnectionGuard) -> Callable[[], Awaitable[None]]:
    """Stop listening and close idle connections; busy ones close after their answer."""

    async def stop_accepting() -> None:
        for site in list(runner.sites):
            await site.stop()
        guard.drain()

    return stop_accepting
