"""Reconciliations waiting for a round trip to Redis.

A finished request's reconciliation is not sent on its own: the next admission on this replica
carries it in its pipeline (:meth:`.ledger.Ledger.exchange`), so under load a limited request
costs one round trip in all. A timer sends what waits when no admission comes soon enough.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from .ledger import Reconciliation

SETTLE_BATCH_SECONDS = 0.02
"""Longest a reconciliation waits for an admission to carry it before it is sent on its own."""
MAX_BATCH = 64
"""Most reconciliations one round trip carries (bounds the pipeline and Redis's time in it)."""
MAX_QUEUED = 10_000
"""At this length the queue is sent at once instead of waiting for the timer."""


class SettlementQueue:
    """FIFO of reconciliations; ``flush`` is called (on the loop) when they should go on their own."""

    __slots__ = ("_flush", "_items", "_timer")

    def __init__(self, flush: Callable[[], None]) -> None:
        self._flush = flush
        self._items: list[Reconciliation] = []
        self._timer: asyncio.TimerHandle | None = None

    def __bool__(self) -> bool:
        return bool(self._items)

    def add(self, item: Reconciliation) -> None:
        self._items.append(item)
        if len(self._items) == MAX_QUEUED:
            self.cancel_timer()
            self._flush()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(SETTLE_BATCH_SECONDS, self._fire)

    def take(self) -> list[Reconciliation]:
        """Up to MAX_BATCH of the oldest waiting; the timer stops when none is left."""
        items = self._items
        if not items:
            return []
        batch, self._items = items[:MAX_BATCH], items[MAX_BATCH:]
        if not self._items:
            self.cancel_timer()
        return batch

    def cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _fire(self) -> None:
        self._timer = None
        if self._items:
            self._flush()
