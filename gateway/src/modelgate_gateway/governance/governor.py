"""Admit a limited key's request against the fleet-wide counters, and settle it when it ends.

The create handler calls :meth:`Governor.key_policy` for every request (a dict lookup: keys
without limits stop there), then :meth:`Governor.admit` (one Redis round trip) and, whatever
happens to the request, :meth:`Governor.settle`, which reconciles in the background so neither
the answer nor a disconnect waits for Redis. While Redis fails, the configured policy applies
(fail-open or fail-closed) without trying Redis again for ``retryRedisAfterSeconds``.
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
from ..observability.recording import RequestRecord
from ..runtime import KeyRuntime, RuntimeConfig
from . import estimates
from .answers import LimitsUnavailable, denial_error, rate_headers
from .ledger import Claim, Ledger, LedgerUnavailable
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
            subjects = {(s.kind, s.name): s.limits.budget_nano / NANO_USD
                        for p in policy.keys.values() for s in p.subjects}
            self.metrics.configure(((kind, name, budget) for (kind, name), budget in subjects.items()),
                                   policy.on_failure.value)

    def key_policy(self, key: KeyRuntime | None) -> KeyPolicy | None:
        return None if key is None else self.policy.keys.get(key.name)

    # --- admission ----------------------------------------------------------------------

    async def admit(self, key_policy: KeyPolicy, model: str, payload: Mapping[str, Any], body_bytes: int,
                    record: RequestRecord) -> Ticket | None:
        """Reserve the request's estimate everywhere it is limited; raise the 429 when it may not run.

        None: Redis is unavailable and the policy is fail-open (the request runs uncounted).
        """
        policy = self.policy
        now = time.time()
        now_ms = int(now * 1000)
        minute = counters.minute(now_ms)
        tokens, cost = estimates.reservation(policy, model, payload, body_bytes)
        claim = Claim(os.urandom(9).hex(), key_policy.subjects, minute.id,
                      tuple(counters.budget_window(s.limits.window, now_ms) for s in key_policy.subjects),
                      tokens, cost)
        ledger = self._ledger
        if ledger is None or time.monotonic() < self._down_until:
            self._unavailable("reserve", record, None)
            return None
        lease_end = now_ms + int((policy.lease_seconds.get(model, 600.0) + LEASE_MARGIN_SECONDS) * 1000)
        try:
            admission = await ledger.reserve(claim, now_ms, lease_end, minute)
        except LedgerUnavailable as exc:
            self._unavailable("reserve", record, exc)
            return None
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
                log.error("governance: Redis failed (%s); applying %s to limited keys until it answers", exc,
                          policy.value)
            self._down_until = time.monotonic() + self.policy.retry_after_seconds
        if self.metrics is not None:
            self.metrics.redis_failures.labels(operation, policy.value).inc()
        if operation == "reserve" and policy is RedisFailurePolicy.FAIL_CLOSED:
            if record is not None:
                record.error_type = "limits_unavailable"
            retry = str(max(1, round(self.policy.retry_after_seconds)))
            raise LimitsUnavailable("The gateway cannot check this key's limits right now; retry shortly.",
                                    headers={"Retry-After": retry})

    def _recovered(self) -> None:
        if self._down_until != 0.0:
            self._down_until = 0.0
            log.warning("governance: Redis answers again; limits are enforced")

    # --- settlement ---------------------------------------------------------------------

    def settle(self, ticket: Ticket, record: RequestRecord) -> None:
        """Reconcile in the background: the request's real usage replaces its reservation."""
        usage = record.usage
        claim = ticket.claim
        if usage is not None:
            tokens, cost = estimates.charge(self.policy, usage, record.model, record.deployment)
        elif record.deployment is not None:  # the upstream answered but reported no usage: keep the estimate
            tokens, cost = claim.tokens, claim.cost_nano
        else:  # nothing reached an upstream that answered: release everything
            tokens, cost = 0, 0
        task = asyncio.get_running_loop().create_task(self._reconcile(claim, tokens, cost))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _reconcile(self, claim: Claim, tokens: int, cost: int) -> None:
        ledger = self._ledger
        try:
            if ledger is None:
                raise LedgerUnavailable("no ledger")
            totals = await ledger.reconcile(claim, tokens, cost)
        except LedgerUnavailable as exc:
            log.error("governance: a reconciliation was lost (%s); its reservation is released when its "
                      "lease ends", exc)
            if self.metrics is not None:
                self.metrics.redis_failures.labels("reconcile", self.policy.on_failure.value).inc()
        else:
            if self.metrics is not None:
                self._show_spend(claim, totals)
        finally:
            if self.metrics is not None:
                self.metrics.in_flight.dec()

    def _show_spend(self, claim: Claim, totals: list[tuple[int, int]]) -> None:
        assert self.metrics is not None
        for subject, (spent, reserved) in zip(claim.subjects, totals, strict=True):
            if subject.limits.budget_nano:
                self.metrics.spend.labels(subject.kind, subject.name).set(spent / NANO_USD)
                self.metrics.reserved.labels(subject.kind, subject.name).set(reserved / NANO_USD)

    async def drain(self) -> None:
        """Wait (at most CLOSE_SECONDS) for the reconciliations in flight."""
        if self._pending:
            await asyncio.wait(set(self._pending), timeout=CLOSE_SECONDS)

    async def close(self) -> None:
        await self.drain()
        for task in self._pending:
            task.cancel()
        if self._ledger is not None:
            with contextlib.suppress(Exception):
                await self._ledger.close()
            self._ledger = None
