"""The governance counters in Redis: one script call to reserve, one to reconcile.

Scripts run by EVALSHA (redis-py loads them again after a Redis restart). Every call is bounded
by the socket timeouts (connect included), so an unreachable or stalled Redis becomes a
:class:`LedgerUnavailable` within ``timeout_seconds``, never a hang.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..config import counters
from .policy import Subject
from .scripts import LIMIT_CODES, RECONCILE, RESERVE

if TYPE_CHECKING:
    import redis.asyncio as aioredis

KEEP_MS = 35 * 86_400_000
"""Lifetime of a subject's in-flight set and last-use stamp after its last request."""


class LedgerUnavailable(Exception):
    """Redis could not be reached or did not answer in time."""


@dataclass(frozen=True, slots=True)
class Denial:
    subject: Subject
    limit: str
    """``requests``, ``tokens``, ``concurrency`` or ``budget``."""


@dataclass(frozen=True, slots=True)
class Counts:
    """A subject's counters right after this request's reservation (fleet-wide)."""

    requests: int
    tokens: int
    in_flight: int
    spent_nano: int
    reserved_nano: int


@dataclass(frozen=True, slots=True)
class Admission:
    denial: Denial | None
    """None: admitted and counted."""
    counts: list[Counts]
    """Per subject of the claim: after the reservation when admitted, as found when denied."""


@dataclass(frozen=True, slots=True)
class Claim:
    """What one request reserved, per subject, and where: reconcile undoes exactly this."""

    reservation_id: str
    subjects: tuple[Subject, ...]
    minute_id: str
    budget_windows: tuple[counters.Window, ...]
    tokens: int
    cost_nano: int

    def keys(self) -> list[str]:
        out: list[str] = []
        for subject, window in zip(self.subjects, self.budget_windows, strict=True):
            sid = subject.redis_id
            out += [
                counters.requests_key(sid, self.minute_id),
                counters.tokens_key(sid, self.minute_id),
                counters.in_flight_key(sid),
                counters.reservations_key(sid),
                counters.budget_key(sid, window.id),
            ]
        return out


class Ledger:
    """redis is imported only when a config names a Redis (a gateway without limits, such as a
    sidecar per pod usually is, never pays its ~5 MiB)."""

    def __init__(self, client: aioredis.Redis) -> None:
        from redis.exceptions import RedisError

        self._errors: tuple[type[Exception], ...] = (RedisError, OSError)  # TimeoutError is an OSError
        self._client = client
        self._reserve = client.register_script(RESERVE)
        self._reconcile = client.register_script(RECONCILE)

    @classmethod
    def from_url(cls, url: str, password: str | None, timeout_seconds: float) -> Ledger:
        import redis.asyncio as aioredis

        client = aioredis.Redis.from_url(
            url,
            password=password,
            socket_timeout=timeout_seconds,
            socket_connect_timeout=timeout_seconds,
            health_check_interval=30,
        )
        return cls(client)

    async def reserve(self, claim: Claim, now_ms: int, lease_end_ms: int, minute: counters.Window) -> Admission:
        args: list[str | int] = [now_ms, claim.reservation_id, lease_end_ms, len(claim.subjects), KEEP_MS]
        for subject, window in zip(claim.subjects, claim.budget_windows, strict=True):
            lim = subject.limits
            args += [
                lim.requests_per_minute,
                lim.tokens_per_minute,
                lim.concurrency,
                lim.budget_nano,
                claim.tokens,
                claim.cost_nano,
                minute.ends_ms or 0,
                window.id,
                window.ends_ms + counters.GRACE_SECONDS * 1000 if window.ends_ms is not None else 0,
            ]
        reply = [int(v) for v in await self._call(self._reserve, claim.keys(), args)]
        start = 1 if reply[0] == 1 else 3
        counts = [Counts(*reply[i : i + 5]) for i in range(start, len(reply), 5)]
        if reply[0] == 1:
            return Admission(None, counts)
        return Admission(Denial(claim.subjects[reply[1]], LIMIT_CODES[reply[2]]), counts)

    async def reconcile(self, claim: Claim, tokens: int, cost_nano: int) -> list[tuple[int, int]]:
        """Replace the reservation by the real usage; returns (spent, reserved) nano-USD per subject."""
        args: list[str | int] = [claim.reservation_id, len(claim.subjects)]
        for subject in claim.subjects:
            lim = subject.limits
            args += [
                1 if lim.tokens_per_minute else 0,
                tokens - claim.tokens,
                1 if lim.tracked else 0,
                1 if lim.budget_nano else 0,
                claim.cost_nano,
                cost_nano,
            ]
        reply = await self._call(self._reconcile, claim.keys(), args)
        values = [int(v) for v in reply]
        return [(values[i], values[i + 1]) for i in range(0, len(values), 2)]

    async def _call(self, script: object, keys: Sequence[str], args: Sequence[str | int]) -> list[int]:
        try:
            reply = await script(keys=keys, args=args)  # type: ignore[operator]
        except self._errors as exc:
            raise LedgerUnavailable(f"{type(exc).__name__}: {exc}") from None
        if not isinstance(reply, list):
            raise LedgerUnavailable(f"unexpected script reply {type(reply).__name__}")
        return reply

    async def close(self) -> None:
        await self._client.aclose()
