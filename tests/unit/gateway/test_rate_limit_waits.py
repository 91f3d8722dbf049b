"""What a request may wait for once nothing else can serve it, and what it reports when it cannot."""

from __future__ import annotations

import time

from modelgate_gateway.config import Strategy
from modelgate_gateway.observability.recording import AttemptOutcome
from modelgate_gateway.runtime import ModelRuntime, TargetRuntime
from modelgate_gateway.upstream.balancing import HealthBoard
from modelgate_gateway.upstream.fallback import Failure
from modelgate_gateway.upstream.ratelimits import PINNED_RETRY_PAUSE, Waits


def _model(name: str, *deployments: str) -> ModelRuntime:
    return ModelRuntime(name=name, strategy=Strategy.WEIGHTED_RANDOM,
                        targets=tuple(TargetRuntime(d, 1.0) for d in deployments), fallbacks=(), max_attempts=3,
                        total_timeout_seconds=60, max_retry_after_seconds=10, retry_after_cap_seconds=60,
                        cooldown_failures=3, cooldown_seconds=30)


PRIMARY, FALLBACK = _model("gpt-4o", "a", "a2"), _model("mini", "b")
LIMITED = AttemptOutcome.RATE_LIMITED


def _waits(board: HealthBoard, *, pinned: str | None = None, max_wait: float = 10.0,
           models: tuple = (PRIMARY, FALLBACK)) -> Waits:
    return Waits(board, models, pinned, time.monotonic() + 60, max_wait)


async def test_only_busy_deployments_are_waited_for_never_broken_ones() -> None:
    board = HealthBoard()
    now = time.monotonic()
    board.defer("a", now + 0.05)  # this request's 429
    failures = [Failure("a", LIMITED, "", 429, 0.05), Failure("a2", AttemptOutcome.SERVER_ERROR, "", 500),
                Failure("b", LIMITED, "", 429, None)]  # a 429 without a time: not waited for
    found = await _waits(board).wait(failures, lambda _: True)
    assert found == (PRIMARY, "a")
    assert board.deferred_for("a", time.monotonic()) == 0  # the wait ran its course


async def test_waits_stop_at_the_budget_and_the_report_says_when_to_come_back() -> None:
    board = HealthBoard()
    now = time.monotonic()
    board.defer("a", now + 30)  # tried: 429
    board.defer("b", now + 12)  # skipped: an earlier request's 429
    failures = [Failure("a", LIMITED, "", 429, 30.0), Failure("a2", AttemptOutcome.TIMEOUT, "")]
    waits = _waits(board)
    assert await waits.wait(failures, lambda _: True) is None  # 12 s > maxRetryAfterSeconds 10
    summary, retry_after = waits.outcome(failures, tried={"a", "a2"})
    assert retry_after is not None and 11 < retry_after <= 12
    assert summary[:2] == failures and summary[2].deployment == "b"
    assert summary[2].outcome is AttemptOutcome.SKIPPED  # named, though nothing was sent to it


async def test_a_full_deployment_is_given_up_and_the_next_one_waited_for() -> None:
    board = HealthBoard()
    failures = [Failure("a", LIMITED, "", 429, 0.0), Failure("a2", LIMITED, "", 429, 0.0)]  # "Retry-After: 0"
    found = await _waits(board).wait(failures, lambda name: name != "a")
    assert found == (PRIMARY, "a2")


async def test_a_pinned_create_waits_for_its_deferral_a_follow_up_does_not() -> None:
    board = HealthBoard()
    board.defer("a", time.monotonic() + 20)
    pinned_create = _waits(board, pinned="a", models=(PRIMARY,))
    assert await pinned_create.wait([], lambda _: True) is None  # 20 s > 10 s
    assert pinned_create.outcome([], set())[1] is not None  # 429 with Retry-After
    follow_up = _waits(board, pinned="a", models=(None,), max_wait=0.0)
    assert follow_up.outcome([], set()) == ([], None)  # deferrals do not hold follow-ups


async def test_a_pinned_deployment_is_retried_after_a_short_pause_for_other_failures() -> None:
    board = HealthBoard()
    waits = _waits(board, pinned="a", models=(PRIMARY,), max_wait=PINNED_RETRY_PAUSE)
    started = time.monotonic()
    failed = [Failure("a", AttemptOutcome.SERVER_ERROR, "", 500)]
    assert await waits.wait(failed, lambda _: True) == (PRIMARY, "a")
    assert time.monotonic() - started >= PINNED_RETRY_PAUSE * 0.9
    assert await waits.wait(failed, lambda _: True) is None  # the budget is spent
    assert await waits.wait([Failure("a", AttemptOutcome.CLIENT_ERROR, "", 400)], lambda _: True) is None
