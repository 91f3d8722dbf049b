"""The background tracker: bounded polls, a cap on what one replica follows, once-only counting."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace
from typing import Any

from modelgate_gateway.config import BackgroundFollowUp
from modelgate_gateway.observability.recording import BilledEvent
from modelgate_gateway.state.background import BackgroundTracker, Pending
from modelgate_gateway.state.ledger import MemoryLedger
from modelgate_gateway.state.store import StateStoreError
from raw_http_server import eventually

USAGE = {"input_tokens": 10, "output_tokens": 2}


class Sink:
    def __init__(self) -> None:
        self.events: list[BilledEvent] = []

    def usage_recorded(self, event: BilledEvent) -> None:
        self.events.append(event)


def _pending(i: int) -> Pending:
    now = time.time()
    return Pending(
        deployment="a",
        upstream_id=f"resp_{i}",
        response_id=f"gw_{i}",
        request_id=f"req_{i}",
        model="m",
        key_name="k",
        end_user=None,
        created=now,
        deadline=now + 60,
    )


def _tracker(settings: BackgroundFollowUp) -> tuple[BackgroundTracker, Sink]:
    sink = Sink()
    ledger = MemoryLedger()
    return BackgroundTracker(sink, lambda: ledger, lambda: settings), sink  # type: ignore[arg-type]


async def test_polls_in_flight_never_exceed_the_bound() -> None:
    settings = BackgroundFollowUp(poll_interval_seconds=0.05, max_concurrent_polls=2)
    tracker, sink = _tracker(settings)
    gate = asyncio.Event()
    in_flight = 0
    most = 0

    async def fetch(pending: Pending) -> dict[str, Any]:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        await gate.wait()
        in_flight -= 1
        return {"status": "completed", "usage": USAGE}

    tracker.fetch = fetch
    for i in range(5):
        await tracker.track(_pending(i))
    semaphore = tracker._semaphore(settings)
    # two polls run; the other three queue on the bound instead of reaching the upstream
    await eventually(lambda: in_flight == 2 and len(semaphore._waiters or ()) == 3, timeout=5)
    gate.set()
    await eventually(lambda: len(sink.events) == 5, timeout=5)
    assert most == 2
    assert sorted(e.response_id for e in sink.events) == [f"gw_{i}" for i in range(5)]
    assert {(e.status, e.recorded_by, e.usage.input_tokens) for e in sink.events} == {  # type: ignore[union-attr]
        ("completed", "follow_up", 10)
    }
    await tracker.close()


async def test_one_replica_follows_at_most_its_cap_and_the_rest_waits_in_the_ledger() -> None:
    settings = BackgroundFollowUp(poll_interval_seconds=60, max_followed=3)
    tracker, _ = _tracker(settings)
    for i in range(5):
        await tracker.track(_pending(i))
    assert tracker.following == 3
    await tracker.close()


async def test_a_settled_response_is_not_counted_again_by_a_later_poll_or_the_follow_up() -> None:
    settings = BackgroundFollowUp(poll_interval_seconds=60)
    tracker, sink = _tracker(settings)
    await tracker.track(_pending(1))
    done = {"status": "completed", "usage": USAGE, "background": True}
    assert await tracker.settle("a", "resp_1", {"status": "in_progress", "usage": None}, "poll") is False
    results = await asyncio.gather(*(tracker.settle("a", "resp_1", done, "poll") for _ in range(4)))
    assert results.count(True) == 1 and len(sink.events) == 1
    assert tracker.following == 0  # its follow-up stopped
    assert await tracker.settle("a", "resp_1", done, "follow_up") is False
    await tracker.close()


class _SwallowingLedger(MemoryLedger):
    """``adopt`` as redis-py can behave on Python 3.11: a cancellation that arrives as a call ends
    is lost inside the client (``asyncio.wait_for``) and the call fails instead."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = asyncio.Event()

    async def adopt(self, owner: str, lease: float, limit: int) -> list[tuple[str, bytes]]:
        self.entered.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            raise StateStoreError("redis: background ledger call failed: Connection closed by server.") from None
        return []


async def test_shutdown_ends_the_sweep_even_when_redis_swallows_the_cancellation() -> None:
    # The gateway's cleanup of the sweep must end although the cancellation never arrives: before,
    # the sweep logged the failure, slept half a lease and swept again, for ever (a hung shutdown).
    from aiohttp import web

    from modelgate_gateway.app import _follow_background
    from modelgate_gateway.appkeys import STATE

    ledger = _SwallowingLedger()
    tracker = BackgroundTracker(Sink(), lambda: ledger, lambda: BackgroundFollowUp(lease_seconds=60))  # type: ignore[arg-type]
    app = web.Application()
    app[STATE] = SimpleNamespace(background=tracker)  # type: ignore[assignment]
    cleanup = _follow_background(app)
    await anext(cleanup)  # serving: the sweep runs
    await asyncio.wait_for(ledger.entered.wait(), 5)
    started = time.monotonic()
    async with asyncio.timeout(10):  # shutting down: must end at once, not sweep again
        await anext(cleanup, None)
    # Timed, not only bounded: the cleanup suppresses CancelledError, so a timeout's cancellation
    # would end it too, silently, after the timeout.
    assert time.monotonic() - started < 2
