"""The governance counters in Redis, names and windows: the contract between the gateway, which
writes them, and the operator, which reads them into ``ModelGateKey`` status.

Rate limits count per fixed UTC minute; budgets per UTC day, UTC calendar month, or forever. A
window is named by an id inside the Redis key, so replicas agree on it without talking to each
other (their clocks need only agree to well under a minute). Every key shares one hash tag so a
reservation's keys sit in one slot (Redis Cluster runs the scripts unchanged). Pure: stdlib only.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from .v1alpha1 import BudgetWindow

PREFIX = "{modelgate:gov}:"


def subject_id(kind: str, name: str) -> str:
    """``key:<name>`` or ``tenant:<name>``."""
    return f"{kind}:{name}"


def requests_key(subject: str, minute_id: str) -> str:
    return f"{PREFIX}{subject}:rq:{minute_id}"


def tokens_key(subject: str, minute_id: str) -> str:
    return f"{PREFIX}{subject}:tk:{minute_id}"


def in_flight_key(subject: str) -> str:
    """Sorted set: reservation id -> lease end (epoch ms); its size is the concurrency."""
    return f"{PREFIX}{subject}:fl"


def reservations_key(subject: str) -> str:
    """Hash: reservation id -> ``<budget window id>|<nano-USD>``; field ``@last``: last use (epoch ms)."""
    return f"{PREFIX}{subject}:rv"


def budget_key(subject: str, window_id: str) -> str:
    """Hash with fields ``spent`` and ``reserved`` in nano-USD for one budget window."""
    return f"{PREFIX}{subject}:bg:{window_id}"


LAST_USED_FIELD = "@last"

MINUTE_MS = 60_000
GRACE_SECONDS = 86_400
"""How long a budget window's counters outlive it: reconciliations of requests that started in
it still land there (a request never runs for a day)."""


@dataclass(frozen=True, slots=True)
class Window:
    id: str
    """Part of the Redis key: ``m<minute>``, ``d<yyyymmdd>``, ``M<yyyymm>`` or ``total``."""
    ends_ms: int | None
    """Epoch milliseconds when the next window starts; None for ``total``."""

    def reset_seconds(self, now_ms: int) -> float | None:
        return None if self.ends_ms is None else max(self.ends_ms - now_ms, 0) / 1000.0

    def ttl_seconds(self, now_ms: int) -> int | None:
        """Lifetime of the window's counters in Redis: until its end plus the grace period."""
        if self.ends_ms is None:
            return None
        return (self.ends_ms - now_ms) // 1000 + GRACE_SECONDS


def minute(now_ms: int) -> Window:
    index = now_ms // MINUTE_MS
    return Window(f"m{index}", (index + 1) * MINUTE_MS)


def budget_window(kind: BudgetWindow, now_ms: int) -> Window:
    if kind is BudgetWindow.TOTAL:
        return Window("total", None)
    moment = datetime.fromtimestamp(now_ms / 1000, UTC)
    if kind is BudgetWindow.DAILY:
        start = moment.replace(hour=0, minute=0, second=0, microsecond=0)
        return Window(f"d{start:%Y%m%d}", _ms(start + timedelta(days=1)))
    start = moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    following = start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(
        month=start.month + 1)
    return Window(f"M{start:%Y%m}", _ms(following))


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)
