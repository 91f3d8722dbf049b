"""Counting every background response once, when it ends, whoever sees the end first.

A ``background: true`` create returns before the model ran, so its usage is unknown then. The
gateway that created it records an entry in the ledger (:mod:`..state.ledger`: Redis when
configured, so all replicas share it) and follows it up: it asks the upstream with a growing
interval (``pollIntervalSeconds`` doubling up to ``maxPollIntervalSeconds``), at most
``maxConcurrentPolls`` at once, until the response reaches a terminal state or the deadline
passes. A client polling it (retrieve, stream-retrieve, cancel) on any replica may see the end
first: then that replica counts it. Either way :meth:`BackgroundTracker.settle` goes through the
ledger's claim / record / release, so the usage is charged exactly once. Replicas sweep the
ledger for entries whose follower stopped renewing its lease (crash, restart) and adopt them.

The upstream call itself is injected (``fetch``): this module knows nothing of HTTP.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import asdict, dataclass
from typing import Any

import orjson

from ..config import BackgroundFollowUp
from ..observability.accounting import Operation
from ..observability.recording import BilledEvent, Observer, Usage
from ..observability.usage import is_terminal, usage_of
from .ledger import BackgroundLedger
from .store import StateStoreError

log = logging.getLogger("modelgate.gateway.background")
_DEFAULTS = BackgroundFollowUp()
_UNCONFIGURED_POLL_SECONDS = 0.05

Fetch = Callable[["Pending"], Awaitable[dict[str, Any] | None]]
"""Ask the upstream for a response: the Responses object, or None when it no longer exists."""
Counted = Callable[["Pending", Usage | None], None]
"""Called once when a background response is counted (after the observer), with its final usage."""


@dataclass(frozen=True, slots=True)
class Pending:
    """A background response not counted yet, and what to charge it to."""

    deployment: str
    upstream_id: str
    response_id: str
    request_id: str
    model: str | None
    key_name: str | None
    end_user: str | None
    created: float
    """Unix time of the create."""
    deadline: float
    """Unix time after which the follow-up gives up."""
    charged: dict[str, Any] | None = None
    """What the create charged to the key's and tenant's budgets and limits (the governor's note;
    opaque here), corrected by :attr:`BackgroundTracker.on_counted` when the response is counted."""

    @property
    def key(self) -> str:
        return ledger_key(self.deployment, self.upstream_id)

    def encode(self) -> bytes:
        return orjson.dumps(asdict(self))

    @classmethod
    def decode(cls, raw: bytes) -> Pending | None:
        try:
            return cls(**orjson.loads(raw))
        except (orjson.JSONDecodeError, TypeError):
            return None


def ledger_key(deployment: str, upstream_id: str) -> str:
    return f"{deployment}/{upstream_id}"


class BackgroundTracker:
    """Follows this replica's background responses and settles any that ends, exactly once."""

    def __init__(
        self,
        observer: Observer,
        ledger: Callable[[], BackgroundLedger],
        settings: Callable[[], BackgroundFollowUp | None],
        *,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._observer = observer
        self._ledger = ledger
        self._settings = settings
        self._wall_clock = wall_clock
        self.fetch: Fetch | None = None
        """Set by the app once the upstream layer exists."""
        self.on_counted: Counted | None = None
        """Set by the app: budgets and token limits learn the final usage here (exactly once)."""
        self.instance = uuid.uuid4().hex
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._polls: asyncio.Semaphore | None = None
        self._polls_limit = 0
        self._closing = False
        self._stopped = asyncio.Event()
        """Set by :meth:`stop`: ends the sweep and the follow-ups' waits at once."""
        self._chores: set[asyncio.Task[object]] = set()

    def _current(self) -> BackgroundFollowUp:
        return self._settings() or _DEFAULTS

    @property
    def following(self) -> int:
        """Responses this replica follows that have not ended (the pending gauge)."""
        return len(self._tasks)

    # --- entry points ---------------------------------------------------------------------

    def submit(self, work: Coroutine[Any, Any, object]) -> None:
        """Run ledger work off the request path (the answer does not wait for Redis); bounded."""
        if self._closing or len(self._chores) >= self._current().max_followed:
            work.close()
            log.error("background ledger work dropped: %d chores pending", len(self._chores))
            return
        task = asyncio.create_task(work)
        self._chores.add(task)
        task.add_done_callback(self._chore_done)

    def _chore_done(self, task: asyncio.Task[object]) -> None:
        self._chores.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background ledger work failed", exc_info=task.exception())

    async def idle(self) -> None:
        """Wait for the ledger work submitted so far (tests, shutdown)."""
        while self._chores:
            await asyncio.wait(list(self._chores))

    async def track(self, pending: Pending) -> None:
        """A background create returned: remember it in the ledger and follow it up."""
        settings = self._current()
        if not settings.enabled:
            return
        try:
            await self._ledger().add(
                pending.key, pending.encode(), pending.deadline, self.instance, settings.lease_seconds
            )
        except StateStoreError as exc:
            log.error("background response %s: cannot record it for follow-up: %s", pending.response_id, exc)
            return
        self._follow(pending)

    async def settle(self, deployment: str, upstream_id: str, response: Any, recorded_by: str) -> bool:
        """``response`` was seen (a poll, a stream's end, the follow-up): count it if it ended and is not counted.

        True when this call counted it. A response that is not a tracked background one, or not
        terminal, or already counted, is left alone.
        """
        if not is_terminal(response):
            return False
        return await self._record(
            ledger_key(deployment, upstream_id), str(response.get("status")), usage_of(response), recorded_by
        )

    async def run(self) -> None:
        """Adopt, every lease period, the entries whose follower went away (a crash, a restart).

        Ends when :meth:`stop` is called, not only when cancelled: on Python 3.11 a cancellation that
        arrives as a Redis call completes can be swallowed inside the client (``asyncio.wait_for``),
        and a loop that only cancellation ends would then sweep a dead Redis forever on shutdown.
        """
        while not self._closing:
            settings = self._settings()
            if settings is None:  # no config yet: its lease decides how long to wait, so wait for it
                await self._pause(_UNCONFIGURED_POLL_SECONDS)
                continue
            if settings.enabled:
                await self._adopt(settings)
            await self._pause(settings.lease_seconds / 2)

    def stop(self) -> None:
        """No more sweeps or follow-up polls (shutdown); :meth:`close` then hands the entries back."""
        self._closing = True
        self._stopped.set()

    async def _pause(self, seconds: float) -> None:
        """Sleep ``seconds``, or until :meth:`stop`."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._stopped.wait()

    async def close(self) -> None:
        """Stop following; hand the entries back so another replica adopts them at once."""
        await self.idle()
        self.stop()
        tasks = list(self._tasks.items())
        for _, task in tasks:
            task.cancel()
        for _, task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        with contextlib.suppress(StateStoreError):
            for key, _ in tasks:
                await self._ledger().disown(key, self.instance)

    # --- internals ------------------------------------------------------------------------

    async def _record(self, key: str, status: str, usage: Usage | None, recorded_by: str) -> bool:
        ledger = self._ledger()
        token = uuid.uuid4().hex
        try:
            if not await ledger.claim(key, token, self._current().lease_seconds):
                return False
            raw = await ledger.record(key, token)
        except StateStoreError as exc:
            log.warning("background response %s: ledger unavailable, counted later: %s", key, exc)
            with contextlib.suppress(StateStoreError):
                await ledger.release(key, token)
            return False
        pending = Pending.decode(raw) if raw is not None else None
        if pending is None:
            return False
        task = self._tasks.pop(key, None)
        if task is not None and task is not asyncio.current_task():
            task.cancel()
        self._observer.usage_recorded(
            BilledEvent(
                request_id=pending.request_id,
                response_id=pending.response_id,
                operation=Operation.BACKGROUND,
                model=pending.model,
                deployment=pending.deployment,
                key_name=pending.key_name,
                end_user=pending.end_user,
                usage=usage,
                status=status,
                recorded_by=recorded_by,
                created_wall_time=pending.created,
            )
        )
        if self.on_counted is not None:
            try:
                self.on_counted(pending, usage)
            except Exception:
                log.exception("background response %s: charging its limits failed", pending.response_id)
        return True

    def _follow(self, pending: Pending) -> None:
        key = pending.key
        if self._closing or key in self._tasks or len(self._tasks) >= self._current().max_followed:
            return  # over the cap it waits in the ledger; a sweep adopts it when there is room
        task = asyncio.create_task(self._follow_up(pending), name=f"modelgate-background-{key}")
        self._tasks[key] = task
        task.add_done_callback(lambda done: self._forget(key, done))

    def _forget(self, key: str, task: asyncio.Task[None]) -> None:
        if self._tasks.get(key) is task:
            del self._tasks[key]
        if not task.cancelled() and task.exception() is not None:
            log.error("background follow-up of %s failed", key, exc_info=task.exception())

    def _semaphore(self, settings: BackgroundFollowUp) -> asyncio.Semaphore:
        if self._polls is None or self._polls_limit != settings.max_concurrent_polls:
            self._polls = asyncio.Semaphore(settings.max_concurrent_polls)
            self._polls_limit = settings.max_concurrent_polls
        return self._polls

    async def _follow_up(self, pending: Pending) -> None:
        delay = self._current().poll_interval_seconds
        while True:
            if not await self._wait(pending, delay):
                return  # counted elsewhere, or another replica follows it now
            if self._wall_clock() >= pending.deadline:
                await self._record(pending.key, "expired", None, "follow_up")
                return
            settings = self._current()
            try:
                async with self._semaphore(settings):
                    response = await self._fetch(pending)
            except Exception as exc:  # the upstream failed this time: ask again later
                log.info("background response %s: follow-up poll failed (%s)", pending.key, type(exc).__name__)
            else:
                if response is None:  # the upstream no longer has it (deleted, expired): nothing to charge
                    await self._record(pending.key, "gone", None, "follow_up")
                    return
                if is_terminal(response):
                    await self.settle(pending.deployment, pending.upstream_id, response, "follow_up")
                    return
            delay = min(delay * 2, settings.max_poll_interval_seconds)

    async def _wait(self, pending: Pending, delay: float) -> bool:
        """Wait ``delay`` (at most until the deadline), renewing the lease often enough to keep it."""
        until = min(self._wall_clock() + delay, pending.deadline)
        while not self._closing:
            lease = self._current().lease_seconds
            try:
                if not await self._ledger().renew(pending.key, self.instance, lease):
                    return False
            except StateStoreError as exc:
                log.warning("background response %s: ledger unavailable: %s", pending.key, exc)
            left = until - self._wall_clock()
            if left <= 0:
                return True
            await self._pause(min(left, lease / 3))
        return False  # stopping: the entry is handed back (close) for another replica to follow

    async def _fetch(self, pending: Pending) -> dict[str, Any] | None:
        if self.fetch is None:
            raise RuntimeError("no upstream fetch wired")
        return await self.fetch(pending)

    async def _adopt(self, settings: BackgroundFollowUp) -> None:
        room = settings.max_followed - len(self._tasks)
        if room <= 0:
            return
        try:
            adopted = await self._ledger().adopt(self.instance, settings.lease_seconds, room)
        except StateStoreError as exc:
            log.warning("background ledger sweep failed: %s", exc)
            return
        for _key, raw in adopted:
            pending = Pending.decode(raw)
            if pending is not None:
                self._follow(pending)
