"""The governance counters in Redis: a reserve script and a reconcile script, pipelined.

Scripts run by EVALSHA (loaded again when Redis answers NOSCRIPT, e.g. after a restart). Every call is bounded
by the socket timeouts (connect included), so an unreachable or stalled Redis becomes a
:class:`LedgerUnavailable` within ``timeout_seconds``, never a hang.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

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


@dataclass(frozen=True, slots=True)
class Reconciliation:
    """One request's settlement: its real usage replaces what ``claim`` reserved.

    ``release``: the request's own end (its concurrency slot and budget reservation are given
    back); False for a later correction of what it was charged (a background response's end),
    which moves tokens and spend only, by ``tokens - claim.tokens`` and ``cost_nano``.
    """

    claim: Claim
    tokens: int
    cost_nano: int
    release: bool = True

    def args(self) -> list[str | int]:
        claim = self.claim
        args: list[str | int] = [claim.reservation_id, len(claim.subjects)]
        for subject in claim.subjects:
            lim = subject.limits
            args += [
                1 if lim.tokens_per_minute else 0,
                self.tokens - claim.tokens,
                1 if lim.tracked and self.release else 0,
                1 if lim.budget_nano else 0,
                claim.cost_nano,
                self.cost_nano,
            ]
        return args


@dataclass(frozen=True, slots=True)
class Reservation:
    claim: Claim
    now_ms: int
    lease_end_ms: int
    minute: counters.Window

    def args(self) -> list[str | int]:
        claim, minute = self.claim, self.minute
        args: list[str | int] = [self.now_ms, claim.reservation_id, self.lease_end_ms, len(claim.subjects), KEEP_MS]
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
        return args


Totals = list[tuple[int, int]]
"""Per subject of a reconciled claim: (spent, reserved) nano-USD of its budget window after it."""

_RESERVE_SHA = hashlib.sha1(RESERVE.encode(), usedforsecurity=False).hexdigest()  # EVALSHA: Redis names scripts so
_RECONCILE_SHA = hashlib.sha1(RECONCILE.encode(), usedforsecurity=False).hexdigest()


class Ledger:
    """redis is imported only when a config names a Redis (a gateway without limits, such as a
    sidecar per pod usually is, never pays its ~5 MiB).

    :meth:`exchange` sends settlements and a reservation in one pipeline: one round trip, the
    settlements first so what they give back is there for the reservation.
    """

    def __init__(self, client: aioredis.Redis) -> None:
        from redis.exceptions import NoScriptError, RedisError

        self._errors: tuple[type[Exception], ...] = (RedisError, OSError)  # TimeoutError is an OSError
        self._no_script = NoScriptError
        self._client = client

    @classmethod
    def from_url(cls, url: str, password: str | None, timeout_seconds: float) -> Ledger:
        import redis.asyncio as aioredis
        from redis.maint_notifications import MaintNotificationsConfig

        # Neither CLIENT SETINFO nor the maintenance-notifications handshake: a Redis that does not
        # know them answers an error whose traceback holds the connecting task (a request's, since
        # a pool connects on demand) in a reference cycle; each also costs a round trip per connect.
        client = aioredis.Redis.from_url(
            url,
            password=password,
            socket_timeout=timeout_seconds,
            socket_connect_timeout=timeout_seconds,
            health_check_interval=30,
            maint_notifications_config=MaintNotificationsConfig(enabled=False),
            driver_info=None,
        )
        return cls(client)

    async def reserve(self, claim: Claim, now_ms: int, lease_end_ms: int, minute: counters.Window) -> Admission:
        admission = (await self.exchange((), Reservation(claim, now_ms, lease_end_ms, minute)))[1]
        assert admission is not None
        return admission

    async def reconcile(self, claim: Claim, tokens: int, cost_nano: int) -> Totals:
        """Replace the reservation by the real usage; returns (spent, reserved) nano-USD per subject."""
        totals = (await self.exchange((Reconciliation(claim, tokens, cost_nano),), None))[0][0]
        if isinstance(totals, Exception):
            raise LedgerUnavailable(f"{type(totals).__name__}: {totals}")
        return totals

    async def exchange(
        self, settlements: Sequence[Reconciliation], reservation: Reservation | None
    ) -> tuple[list[Totals | Exception], Admission | None]:
        """Run ``settlements`` then ``reservation`` in one round trip.

        A settlement that failed inside Redis comes back as its exception (the others stand);
        :class:`LedgerUnavailable` when Redis could not be reached or the reservation failed.
        """
        calls = [(_RECONCILE_SHA, s.claim.keys(), s.args()) for s in settlements]
        if reservation is not None:
            calls.append((_RESERVE_SHA, reservation.claim.keys(), reservation.args()))
        try:
            replies = await self._send(calls)
            missing = [i for i, reply in enumerate(replies) if isinstance(reply, self._no_script)]
            if missing:  # Redis restarted (or never saw the scripts): load them, run what did not run
                await self._client.script_load(RESERVE)
                await self._client.script_load(RECONCILE)
                again = await self._send([calls[i] for i in missing])
                for i, reply in zip(missing, again, strict=True):
                    replies[i] = reply
        except self._errors as exc:
            raise LedgerUnavailable(f"{type(exc).__name__}: {exc}") from None
        totals: list[Totals | Exception] = []
        for reply in replies[: len(settlements)]:
            if isinstance(reply, list):
                values = [int(v) for v in reply]
                totals.append([(values[i], values[i + 1]) for i in range(0, len(values), 2)])
            else:
                totals.append(reply if isinstance(reply, Exception) else LedgerUnavailable(repr(reply)))
        if reservation is None:
            return totals, None
        reply = replies[-1]
        if not isinstance(reply, list):
            raise LedgerUnavailable(f"unexpected reserve reply: {reply!r}")
        return totals, _admission(reservation.claim, [int(v) for v in reply])

    async def _send(self, calls: Sequence[tuple[str, list[str], list[str | int]]]) -> list[Any]:
        pipe = self._client.pipeline(transaction=False)
        for sha, keys, args in calls:
            pipe.evalsha(sha, len(keys), *keys, *args)
        return await pipe.execute(raise_on_error=False)

    async def peek(self, subjects: Sequence[Subject], minute: counters.Window) -> list[Counts]:
        """The subjects' request and token counts of this minute, changing nothing (one MGET)."""
        keys: list[str] = []
        for subject in subjects:
            sid = subject.redis_id
            keys += [counters.requests_key(sid, minute.id), counters.tokens_key(sid, minute.id)]
        try:
            values = await self._client.mget(keys)
        except self._errors as exc:
            raise LedgerUnavailable(f"{type(exc).__name__}: {exc}") from None
        return [Counts(int(values[i] or 0), int(values[i + 1] or 0), 0, 0, 0) for i in range(0, len(values), 2)]

    async def close(self) -> None:
        await self._client.aclose()


def _admission(claim: Claim, reply: list[int]) -> Admission:
    start = 1 if reply[0] == 1 else 3
    counts = [Counts(*reply[i : i + 5]) for i in range(start, len(reply), 5)]
    if reply[0] == 1:
        return Admission(None, counts)
    return Admission(Denial(claim.subjects[reply[1]], LIMIT_CODES[reply[2]]), counts)
