"""Admit a limited key's request against the fleet-wide counters, and settle it when it ends.

The create handler calls :meth:`Governor.key_policy` for every request (a dict lookup: keys
without limits stop there), then :meth:`Governor.admit` and, whatever happens to the request,
:meth:`Governor.settle`. Settling only queues the reconciliation; the next admission sends the
queued ones in its own round trip (one pipeline: reconciliations, then the reservation), so a
limited request costs one Redis round trip, and neither the answer nor a disconnect waits for
Redis. When no admission comes within ``SETTLE_BATCH_SECONDS`` the queue is sent on its own.
While Redis fails, the configured policy applies (fail-open or fail-closed) without trying
Redis again for ``retryRedisAfterSeconds``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..config import RedisFailurePolicy, counters
from ..observability import estimating
from ..observability.accounting import Operation, billed_usage
from ..observability.recording import RequestRecord, Usage
from ..runtime import KeyRuntime, RuntimeConfig
from . import estimates
from .answers import LimitsUnavailable, denial_error, rate_headers
from .batching import SettlementQueue
from .ledger import Claim, Ledger, LedgerUnavailable, Reconciliation, Reservation, Totals
from .policy import EMPTY, NANO_USD, GovernancePolicy, KeyPolicy, compile_policy

if TYPE_CHECKING:
    from ..observability.governance_metrics import GovernanceMetrics

log = logging.getLogger("modelgate.gateway.governance")

LEASE_MARGIN_SECONDS = 60.0
"""A reservation's lease outlives the longest its request can run by this much."""
CLOSE_SECONDS = 5.0
"""Longest the shutdown waits for reconciliations still in flight."""
_TOTAL_RETRY_SECONDS = 86_400.0


class Ticket:
    """An admitted request's reservation and the headers its answer carries."""

    __slots__ = ("claim", "headers")

    def __init__(self, claim: Claim, headers: dict[str, str]) -> None:
        self.claim = claim
        self.headers = headers


class Governor:
    def __init__(self, metrics: GovernanceMetrics | None = None) -> None:
        self.policy: GovernancePolicy = EMPTY
        self.metrics = metrics
        self._ledger: Ledger | None = None
        self._ledger_key: tuple[str, str | None, float] | None = None
        self._down_until = 0.0
        self._pending: set[asyncio.Task[None]] = set()
        self._queue = SettlementQueue(self._flush)

    # --- configuration ------------------------------------------------------------------

    async def configure(self, runtime: RuntimeConfig) -> None:
        policy = compile_policy(runtime.config)
        wanted: tuple[str, str | None, float] | None = None
        if runtime.redis_url and policy.keys:
            wanted = (runtime.redis_url, runtime.redis_password, policy.timeout_seconds)
        if wanted != self._ledger_key:
            old, self._ledger_key = self._ledger, wanted
            self._ledger = Ledger.from_url(*wanted) if wanted is not None else None
            self._down_until = 0.0
            if old is not None:
                await old.close()
        self.policy = policy
        if self.metrics is not None:
            subjects = {
                (s.kind, s.name): s.limits.budget_nano / NANO_USD for p in policy.keys.values() for s in p.subjects
            }
            self.metrics.configure(
                ((kind, name, budget) for (kind, name), budget in subjects.items()), policy.on_failure.value
            )

    def key_policy(self, key: KeyRuntime | None) -> KeyPolicy | None:
        return None if key is None else self.policy.keys.get(key.name)

    async def current_headers(self, key_policy: KeyPolicy) -> dict[str, str]:
        """The x-ratelimit headers of a rate-limited key as its counters stand (one MGET; nothing reserved).

        Empty while Redis is unavailable: an answer is never held up or failed for its headers.
        """
        ledger = self._ledger
        if ledger is None or time.monotonic() < self._down_until:
            return {}
        now_ms = int(time.time() * 1000)
        minute = counters.minute(now_ms)
        try:
            counts = await ledger.peek(key_policy.subjects, minute)
        except LedgerUnavailable as exc:
            self._unavailable("peek", None, exc)
            return {}
        self._recovered()
        return rate_headers(key_policy.subjects, counts, minute.reset_seconds(now_ms) or 0.0)

    # --- admission ----------------------------------------------------------------------

    async def admit(
        self, key_policy: KeyPolicy, model: str, payload: Mapping[str, Any], body_bytes: int, record: RequestRecord
    ) -> Ticket | None:
        """Reserve the request's estimate everywhere it is limited; raise the 429 when it may not run.

        None: Redis is unavailable and the policy is fail-open (the request runs uncounted).
        """
        policy = self.policy
        now = time.time()
        now_ms = int(now * 1000)
        minute = counters.minute(now_ms)
        tokens, cost = estimates.reservation(policy, model, payload, body_bytes)
        claim = Claim(
            os.urandom(9).hex(),
            key_policy.subjects,
            minute.id,
            tuple(counters.budget_window(s.limits.window, now_ms) for s in key_policy.subjects),
            tokens,
            cost,
        )
        ledger = self._ledger
        if ledger is None or time.monotonic() < self._down_until:
            self._unavailable("reserve", record, None)
            return None
        lease_end = now_ms + int((policy.lease_seconds.get(model, 600.0) + LEASE_MARGIN_SECONDS) * 1000)
        settlements = self._queue.take()
        try:
            totals, admission = await ledger.exchange(settlements, Reservation(claim, now_ms, lease_end, minute))
        except LedgerUnavailable as exc:
            self._settled(settlements, exc)
            self._unavailable("reserve", record, exc)
            return None
        self._settled(settlements, totals)
        assert admission is not None
        self._recovered()
        reset = minute.reset_seconds(now_ms) or 0.0
        headers = rate_headers(claim.subjects, admission.counts, reset)
        denial = admission.denial
        if denial is not None:
            index = claim.subjects.index(denial.subject)
            if self.metrics is not None:
                self.metrics.limit_hits.labels(denial.subject.kind, denial.subject.name, denial.limit).inc()
            retry = reset
            if denial.limit == "budget":
                retry = claim.budget_windows[index].reset_seconds(now_ms) or _TOTAL_RETRY_SECONDS
            elif denial.limit == "concurrency":
                retry = 1.0
            record.error_type = f"limit_{denial.limit}"
            raise denial_error(denial, admission.counts[index], retry, headers)
        ticket = Ticket(claim, headers)
        if self.metrics is not None:
            self.metrics.in_flight.inc()
            self._show_spend(claim, [(c.spent_nano, c.reserved_nano) for c in admission.counts])
        return ticket

    def _unavailable(self, operation: str, record: RequestRecord | None, exc: Exception | None) -> None:
        """Count and log the failure; raise the 503 when the policy is fail-closed."""
        policy = self.policy.on_failure
        if exc is not None:
            if self._down_until == 0.0:
                log.error(
                    "governance: Redis failed (%s); applying %s to limited keys until it answers", exc, policy.value
                )
            self._down_until = time.monotonic() + self.policy.retry_after_seconds
        if self.metrics is not None:
            self.metrics.redis_failures.labels(operation, policy.value).inc()
        if operation == "reserve" and policy is RedisFailurePolicy.FAIL_CLOSED:
            if record is not None:
                record.error_type = "limits_unavailable"
            retry = str(max(1, round(self.policy.retry_after_seconds)))
            raise LimitsUnavailable(
                "The gateway cannot check this key's limits right now; retry shortly.", headers={"Retry-After": retry}
            )

    def _recovered(self) -> None:
        if self._down_until != 0.0:
            self._down_until = 0.0
            log.warning("governance: Redis answers again; limits are enforced")

    # --- settlement ---------------------------------------------------------------------

    def settle(self, ticket: Ticket, record: RequestRecord) -> dict[str, Any] | None:
        """Queue the reconciliation: the request's real usage replaces its reservation.

        The charge is what the metrics charge (:func:`..observability.accounting.billed_usage`):
        the reported usage, else the tokenizer's estimate when the request succeeded or produced
        output, else nothing. A background create is charged its reservation now (its usage comes
        at its end) and the returned note goes with it to the follow-up, which hands it to
        :meth:`settle_background` with the final usage, exactly once.
        """
        claim = ticket.claim
        if record.operation == Operation.BACKGROUND:
            if record.usage is not None:  # it ended within the create (a stream that ran to the end)
                tokens, cost = estimates.charge(self.policy, record.usage, record.model, record.deployment)
            elif record.deployment is not None and 200 <= record.status < 300:
                tokens, cost = claim.tokens, claim.cost_nano
            else:  # not created: nothing will run
                tokens, cost = 0, 0
            self._queue.add(Reconciliation(claim, tokens, cost))
            return {"claim": _note(claim), "tokens": tokens, "cost": cost}
        if record.usage is None and record.deployment is not None:
            usage, estimated = billed_usage(record, estimate=False)
            if estimated:  # the tokenizer may still be loading: estimate off the request's way
                task = asyncio.get_running_loop().create_task(self._settle_estimated(claim, record))
                self._pending.add(task)
                task.add_done_callback(self._pending.discard)
                return None
            self._queue.add(self._reconciliation(claim, usage, record))
            return None
        self._queue.add(self._reconciliation(claim, record.usage, record))
        return None

    def _reconciliation(self, claim: Claim, usage: Usage | None, record: RequestRecord) -> Reconciliation:
        if usage is None:  # nothing ran that the metrics would charge: release everything
            return Reconciliation(claim, 0, 0)
        tokens, cost = estimates.charge(self.policy, usage, record.model, record.deployment)
        return Reconciliation(claim, tokens, cost)

    async def _settle_estimated(self, claim: Claim, record: RequestRecord) -> None:
        try:
            if not estimating.is_loaded():
                await asyncio.to_thread(estimating.encoding)
            usage = billed_usage(record)[0]
        except Exception:  # a tokenizer that cannot load: keep the reservation (an upper bound)
            log.exception("governance: estimating the usage of request %s failed", record.request_id)
            self._queue.add(Reconciliation(claim, claim.tokens, claim.cost_nano))
            return
        self._queue.add(self._reconciliation(claim, usage, record))

    def settle_background(
        self, note: dict[str, Any], usage: Usage | None, model: str | None, deployment: str | None
    ) -> None:
        """A background response ended and was counted (once, by the follow-up's ledger): correct
        what its create charged to the key's and tenant's counters to its real usage.

        Without a final usage (the follow-up gave up) the create's charge stands.
        """
        if usage is None:
            return
        try:
            claim = self._claim_of(note["claim"], int(note["tokens"]), int(note["cost"]))
        except (KeyError, TypeError, ValueError):
            log.error("governance: a background response's charge note is malformed; its charge stands")
            return
        if claim is None:
            return
        tokens, cost = estimates.charge(self.policy, usage, model, deployment)
        if tokens != claim.tokens or cost != claim.cost_nano:
            self._queue.add(Reconciliation(claim, tokens, cost - claim.cost_nano, release=False))

    def _claim_of(self, raw: Any, tokens: int, cost: int) -> Claim | None:
        """The create's claim as the follow-up knows it, against the subjects limited now."""
        rid, minute_id, subjects = raw["id"], raw["minute"], raw["subjects"]
        current = {(s.kind, s.name): s for p in self.policy.keys.values() for s in p.subjects}
        kept, windows = [], []
        for kind, name, window in subjects:
            subject = current.get((kind, name))
            if subject is not None:
                kept.append(subject)
                windows.append(counters.Window(str(window), None))
        if not kept:
            return None
        return Claim(str(rid), tuple(kept), str(minute_id), tuple(windows), tokens, cost)

    def _flush(self) -> None:
        """Send the queued settlements on their own (no admission came to carry them)."""
        task = asyncio.get_running_loop().create_task(self._send_settlements())
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _send_settlements(self) -> None:
        while settlements := self._queue.take():
            ledger = self._ledger
            try:
                if ledger is None or time.monotonic() < self._down_until:
                    raise LedgerUnavailable("Redis is unavailable")
                totals = (await ledger.exchange(settlements, None))[0]
            except LedgerUnavailable as exc:
                self._settled(settlements, exc)
                return
            self._settled(settlements, totals)

    def _settled(self, settlements: list[Reconciliation], outcome: list[Totals | Exception] | Exception) -> None:
        for i, settlement in enumerate(settlements):
            result = outcome if isinstance(outcome, Exception) else outcome[i]
            if isinstance(result, Exception):
                log.error(
                    "governance: a reconciliation was lost (%s); its reservation is released when its lease ends",
                    result,
                )
                if self.metrics is not None:
                    self.metrics.redis_failures.labels("reconcile", self.policy.on_failure.value).inc()
            elif self.metrics is not None:
                self._show_spend(settlement.claim, result)
            if settlement.release and self.metrics is not None:
                self.metrics.in_flight.dec()

    def _show_spend(self, claim: Claim, totals: list[tuple[int, int]]) -> None:
        assert self.metrics is not None
        for subject, (spent, reserved) in zip(claim.subjects, totals, strict=True):
            if subject.limits.budget_nano:
                self.metrics.spend.labels(subject.kind, subject.name).set(spent / NANO_USD)
                self.metrics.reserved.labels(subject.kind, subject.name).set(reserved / NANO_USD)

    async def drain(self) -> None:
        """Send the queued reconciliations now and wait (at most CLOSE_SECONDS) for them."""
        deadline = time.monotonic() + CLOSE_SECONDS
        while self._pending or self._queue:
            if self._queue:
                self._queue.cancel_timer()
                self._flush()
            left = deadline - time.monotonic()
            if left <= 0:
                return
            await asyncio.wait(set(self._pending), timeout=left)

    async def close(self) -> None:
        await self.drain()
        self._queue.cancel_timer()
        for task in self._pending:
            task.cancel()
        if self._ledger is not None:
            with contextlib.suppress(Exception):
                await self._ledger.close()
            self._ledger = None


def _note(claim: Claim) -> dict[str, Any]:
    """What a background response's follow-up needs to correct its create's charge (JSON)."""
    return {
        "id": claim.reservation_id,
        "minute": claim.minute_id,
        "subjects": [[s.kind, s.name, w.id] for s, w in zip(claim.subjects, claim.budget_windows, strict=True)],
    }
