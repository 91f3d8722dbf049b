"""Read a key's spend and last use from the gateway's Redis counters (see docs/governance.md).

The counter names and windows come from :mod:`modelgate_gateway.config.counters`, the contract
the gateway writes by. Every call is bounded by a socket timeout; a Redis that does not answer
leaves the spend out of the status (it is informational) and is logged once per outage.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import redis
from redis.exceptions import RedisError

from modelgate_gateway.config import BudgetWindow, counters

from .resources import GateKey
from .status import Spend

log = logging.getLogger("modelgate_operator.keys")
_NANO_USD = 1_000_000_000
TIMEOUT_SECONDS = 2.0


class SpendReader:
    def __init__(self, url: str, password: str | None = None, timeout_seconds: float = TIMEOUT_SECONDS) -> None:
        self._client = redis.Redis.from_url(
            url,
            password=password,
            socket_timeout=timeout_seconds,
            socket_connect_timeout=timeout_seconds,
        )
        self._failing = False

    def read(self, key: GateKey, now: datetime) -> Spend:
        subject = counters.subject_id("key", key.key_name)
        budget = key.limits.get("budget") if isinstance(key.limits, Mapping) else None
        window = None
        if isinstance(budget, Mapping):
            window = counters.budget_window(BudgetWindow(budget.get("window", "monthly")), int(now.timestamp() * 1000))
        try:
            pipe = self._client.pipeline(transaction=False)
            pipe.hget(counters.reservations_key(subject), counters.LAST_USED_FIELD)
            if window is not None:
                pipe.hget(counters.budget_key(subject, window.id), "spent")
            replies: list[Any] = pipe.execute()
        except (RedisError, OSError) as exc:
            if not self._failing:
                log.warning("cannot read key spend from Redis (%s); statuses go without it", exc)
            self._failing = True
            return Spend()
        if self._failing:
            log.info("reading key spend from Redis again")
            self._failing = False
        last = replies[0]
        last_used = (
            datetime.fromtimestamp(int(last) / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if last is not None else None
        )
        if window is None or not isinstance(budget, Mapping):
            return Spend(last_used=last_used)
        spent = int(replies[1] or 0) / _NANO_USD
        return Spend(window.id, spent, float(budget["usd"]), last_used)

    def close(self) -> None:
        self._client.close()
