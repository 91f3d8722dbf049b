"""The ledger's Lua scripts on a real Redis: reservation arithmetic, reconciliation, expired
leases, and the overshoot bound under concurrency."""

from __future__ import annotations

import asyncio
import random
import time

import pytest
import redis

from modelgate_gateway.config import BudgetWindow, counters
from modelgate_gateway.governance.ledger import Claim, Ledger
from modelgate_gateway.governance.policy import Limits, Subject
from redis_server import RedisServer

NOW = 0
"""Epoch ms at the start of the current test (counters expire with their window: never a stale time)."""


@pytest.fixture(autouse=True)
def _now() -> None:
    global NOW  # noqa: PLW0603 - read by every helper and test of this module
    NOW = int(time.time() * 1000)


def claim(subjects: tuple[Subject, ...], rid: str, tokens: int, cost: int, now: int | None = None) -> Claim:
    now = now if now is not None else NOW
    return Claim(rid, subjects, counters.minute(now).id,
                 tuple(counters.budget_window(s.limits.window, now) for s in subjects), tokens, cost)


def budget_hash(server: RedisServer, subject: Subject, now: int | None = None) -> dict[str, int]:
    now = now if now is not None else NOW
    window = counters.budget_window(subject.limits.window, now)
    raw = redis.Redis(port=server.port).hgetall(counters.budget_key(subject.redis_id, window.id))
    return {k.decode(): int(v) for k, v in raw.items()}


async def test_reconcile_replaces_the_reservation_with_the_charge(redis_server: RedisServer) -> None:
    key = Subject("key", "k", Limits(tokens_per_minute=1000, concurrency=5, budget_nano=10_000,
                                     window=BudgetWindow.DAILY))
    ledger = Ledger.from_url(redis_server.url, None, 1.0)
    try:
        first = claim((key,), "r1", 300, 4_000)
        admission = await ledger.reserve(first, NOW, NOW + 60_000, counters.minute(NOW))
        assert admission.denial is None
        assert admission.counts[0].tokens == 300 and admission.counts[0].in_flight == 1
        assert admission.counts[0].reserved_nano == 4_000
        assert await ledger.reconcile(first, 120, 1_500) == [(1_500, 0)]
        second = claim((key,), "r2", 300, 4_000)
        counts = (await ledger.reserve(second, NOW, NOW + 60_000, counters.minute(NOW))).counts[0]
        assert (counts.tokens, counts.in_flight, counts.spent_nano, counts.reserved_nano) == (420, 1, 1_500, 4_000)
        assert await ledger.reconcile(second, 0, 0) == [(1_500, 0)]  # failed: released, nothing charged
        assert budget_hash(redis_server, key) == {"spent": 1_500, "reserved": 0}
    finally:
        await ledger.close()


async def test_a_denial_counts_nothing_and_names_the_limit(redis_server: RedisServer) -> None:
    key = Subject("key", "k", Limits(requests_per_minute=1))
    tenant = Subject("tenant", "t", Limits(budget_nano=1_000, window=BudgetWindow.TOTAL))
    ledger = Ledger.from_url(redis_server.url, None, 1.0)
    try:
        minute = counters.minute(NOW)
        assert (await ledger.reserve(claim((key, tenant), "a", 1, 600), NOW, NOW + 1000, minute)).denial is None
        denied = await ledger.reserve(claim((key, tenant), "b", 1, 600), NOW, NOW + 1000, minute)
        assert denied.denial is not None and denied.denial.limit == "requests" and denied.denial.subject == key
        assert denied.counts[1].reserved_nano == 600  # only a's reservation
        await ledger.reconcile(claim((key, tenant), "a", 1, 600), 1, 1_000)
        # the tenant's budget is spent: budget is checked first and wins over the rate limit
        over = await ledger.reserve(claim((key, tenant), "c", 1, 600), NOW, NOW + 1000, minute)
        assert over.denial is not None and over.denial.limit == "budget" and over.denial.subject == tenant
        # a new minute resets the rate limit, not the total budget
        later = NOW + 60_000
        again = await ledger.reserve(claim((key, tenant), "d", 1, 600, later), later, later + 1000,
                                     counters.minute(later))
        assert again.denial is not None and again.denial.limit == "budget"
    finally:
        await ledger.close()


async def test_an_expired_lease_gives_back_its_slot_and_reservation(redis_server: RedisServer) -> None:
    """A replica that died mid-request never reconciles: its lease ends and the next reserve sweeps it."""
    key = Subject("key", "k", Limits(concurrency=1, budget_nano=1_000, window=BudgetWindow.MONTHLY))
    ledger = Ledger.from_url(redis_server.url, None, 1.0)
    try:
        minute = counters.minute(NOW)
        assert (await ledger.reserve(claim((key,), "lost", 1, 900), NOW, NOW + 5_000, minute)).denial is None
        blocked = await ledger.reserve(claim((key,), "next", 1, 50), NOW + 1_000, NOW + 6_000, minute)
        assert blocked.denial is not None and blocked.denial.limit == "concurrency"
        after = await ledger.reserve(claim((key,), "next", 1, 50), NOW + 5_001, NOW + 9_000, minute)
        assert after.denial is None
        assert (after.counts[0].in_flight, after.counts[0].reserved_nano) == (1, 50)
        # the late reconcile of the swept request charges its spend without releasing twice
        assert await ledger.reconcile(claim((key,), "lost", 1, 900), 1, 700) == [(700, 50)]
    finally:
        await ledger.close()


async def test_concurrent_requests_overshoot_a_budget_by_less_than_one_charge(redis_server: RedisServer) -> None:
    """Many clients racing for the last dollars: the spend passes the budget by less than the largest
    single charge, and equals the sum of the charges of the admitted requests."""
    budget = 1_000_000
    key = Subject("key", "k", Limits(budget_nano=budget, window=BudgetWindow.TOTAL))
    ledgers = [Ledger.from_url(redis_server.url, None, 2.0) for _ in range(4)]  # four "replicas"
    rng = random.Random(17)
    charged: list[int] = []
    count = iter(range(10_000))

    async def worker(ledger: Ledger) -> None:
        for _ in range(1_000):  # bounded; ends once the budget is spent and nothing is reserved
            reserved = rng.randrange(10_000, 60_000)
            actual = rng.randrange(0, reserved + 1)
            ticket = claim((key,), f"r{next(count)}", 10, reserved)
            admission = await ledger.reserve(ticket, NOW, NOW + 60_000, counters.minute(NOW))
            if admission.denial is None:
                await asyncio.sleep(0)  # others reserve while this one "runs"
                await ledger.reconcile(ticket, 10, actual)
                charged.append(actual)
            elif admission.counts[0].reserved_nano == 0:
                return

    try:
        await asyncio.gather(*(worker(ledgers[i % len(ledgers)]) for i in range(16)))
    finally:
        for ledger in ledgers:
            await ledger.close()
    spent = budget_hash(redis_server, key)
    assert spent["reserved"] == 0
    assert spent["spent"] == sum(charged)
    assert budget <= spent["spent"] < budget + max(charged)


async def test_the_operator_reads_what_the_gateway_wrote(redis_server: RedisServer) -> None:
    """The counter names and windows are a contract (config.counters) between gateway and operator."""
    from datetime import UTC, datetime

    from modelgate_operator.keys.resources import parse_key
    from modelgate_operator.keys.spend import SpendReader

    body = {"metadata": {"name": "ci", "namespace": "team-a"},
            "spec": {"secretRef": {"name": "s"}, "limits": {"budget": {"usd": 2, "window": "daily"}}}}
    key = parse_key(body, "gw")
    subject = Subject("key", key.key_name, Limits(budget_nano=2 * 10**9, window=BudgetWindow.DAILY))
    ledger = Ledger.from_url(redis_server.url, None, 1.0)
    now = int(time.time() * 1000)
    try:
        ticket = claim((subject,), "r", 10, 600_000_000, now)
        assert (await ledger.reserve(ticket, now, now + 60_000, counters.minute(now))).denial is None
        await ledger.reconcile(ticket, 10, 500_000_000)
    finally:
        await ledger.close()
    reader = SpendReader(redis_server.url)
    try:
        spend = reader.read(key, datetime.now(UTC))
    finally:
        reader.close()
    assert spend.spent_usd == 0.5 and spend.budget_usd == 2.0
    assert spend.window == counters.budget_window(BudgetWindow.DAILY, now).id
    assert spend.last_used == datetime.fromtimestamp(now // 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    redis_server.process.kill()
    redis_server.process.wait(5)
    gone = SpendReader(redis_server.url)
    try:
        assert gone.read(key, datetime.now(UTC)).spent_usd is None  # unreachable: no spend, no error
    finally:
        gone.close()
