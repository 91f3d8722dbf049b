"""Retry-After from an upstream is validated, bounded and never outlives its cap."""

from __future__ import annotations

import math
import random

import pytest

from modelgate_gateway.config import Strategy
from modelgate_gateway.observability.recording import AttemptOutcome
from modelgate_gateway.runtime import TargetRuntime
from modelgate_gateway.upstream.balancing import HealthBoard, pick
from modelgate_gateway.upstream.fallback import RETRY_AFTER_CEILING, Failure, exhausted_error, retry_after_seconds

NOW = 1445412480.0  # Wed, 21 Oct 2015 07:28:00 GMT


@pytest.mark.parametrize(("headers", "seconds"), [
    ({"Retry-After": "999999999"}, RETRY_AFTER_CEILING),
    ({"Retry-After": "inf"}, RETRY_AFTER_CEILING),
    ({"Retry-After": "Infinity"}, RETRY_AFTER_CEILING),
    ({"Retry-After": "1e400"}, RETRY_AFTER_CEILING),
    ({"Retry-After": "Fri, 31 Dec 9999 23:59:59 GMT"}, RETRY_AFTER_CEILING),
    ({"retry-after-ms": "inf"}, RETRY_AFTER_CEILING),
    ({"Retry-After": "nan"}, None),
    ({"Retry-After": "-5"}, None),
    ({"Retry-After": "-inf"}, None),
    ({"Retry-After": "Mon, 01 Jan 99999 00:00:00 GMT"}, None),  # out of datetime's range
    ({"Retry-After": "Wed, 21 Oct 2015 07:27:00 GMT"}, 0.0),  # in the past: now
    ({"Retry-After": "Wed, 21 Oct 2015 07:28:10 -0000"}, 10.0),  # -0000 is UTC, not local time
    ({"retry-after-ms": "nan", "Retry-After": "4"}, 4.0),  # an unusable ms value falls back
    ({"retry-after-ms": "-1", "Retry-After": "4"}, 4.0),
])
def test_retry_after_is_validated_and_bounded(headers: dict, seconds: float | None) -> None:
    assert retry_after_seconds(headers, now=NOW) == seconds


def test_the_client_is_told_a_whole_number_of_seconds_rounded_up() -> None:
    for wait, header in [(0.0, "1"), (0.2, "1"), (12.4, "13"), (RETRY_AFTER_CEILING, "86400")]:
        err = exhausted_error([Failure("a", AttemptOutcome.RATE_LIMITED, "", 429, wait)], 1)
        assert (err.status, err.headers["Retry-After"]) == (429, header)


def test_a_rate_limited_deployment_decides_the_answer_over_a_later_failure() -> None:
    failures = [Failure("a", AttemptOutcome.RATE_LIMITED, "", 429, 30.0),
                Failure("b", AttemptOutcome.SERVER_ERROR, "", 500)]
    assert exhausted_error(failures, 2).status == 502  # without a deployment to come back to
    err = exhausted_error(failures, 2, retry_after=29.5)
    assert (err.status, err.code, err.headers["Retry-After"]) == (429, "rate_limit_exceeded", "30")


def test_deployments_skipped_for_their_retry_after_are_named() -> None:
    err = exhausted_error([Failure("a", AttemptOutcome.SKIPPED, "rate limited", None, 7.2)], 0, retry_after=7.2)
    assert err.status == 429 and err.headers["Retry-After"] == "8"
    assert err.message == ("No deployment could take the request: "
                           "a: rate limited, not sent (its Retry-After runs for 8 s).")


A, B = TargetRuntime("a", 1), TargetRuntime("b", 0)


def test_a_deferred_deployment_is_never_picked_not_even_in_panic_mode() -> None:
    board = HealthBoard()
    board.defer("a", 110.0)
    assert pick(Strategy.WEIGHTED_RANDOM, (A, B), board, now=100, rng=random.Random(0)) == "b"
    board.record_failure("b", 100, threshold=1, cooldown_seconds=60)  # b cools down: panic mode
    assert pick(Strategy.WEIGHTED_RANDOM, (A, B), board, now=100, rng=random.Random(0)) == "b"
    assert pick(Strategy.WEIGHTED_RANDOM, (A,), board, now=100, rng=random.Random(0)) is None
    assert pick(Strategy.WEIGHTED_RANDOM, (A,), board, now=110, rng=random.Random(0)) == "a"  # over


def test_deferral_remaining_and_the_latest_retry_after_wins() -> None:
    board = HealthBoard()
    assert board.deferred_for("a", 100) == 0
    board.defer("a", 130)
    assert board.deferred_for("a", 100) == 30
    board.defer("a", 105)  # the upstream's newest word
    assert board.deferred_for("a", 100) == 5
    assert not board.cooling_down("a", 100)  # a deferral is not a failure cooldown


def test_success_ends_a_deferral_and_reports_recovery_once() -> None:
    board = HealthBoard()
    board.defer("a", 130)
    assert board.record_success("a", 0.1) is True  # the health gauge goes back to 0
    assert board.deferred_for("a", 100) == 0
    assert board.record_success("a", 0.1) is False


def test_a_reload_cuts_deferrals_to_the_new_caps_and_drops_removed_deployments() -> None:
    board = HealthBoard()
    board.defer("a", 100 + 3600)
    board.defer("b", 100 + 3600)
    board.defer("c", 100 + 5)
    board.limit_deferrals({"a": 60.0, "c": 60.0}, now=100)
    assert board.deferred_for("a", 100) == 60  # cut to the new cap
    assert board.deferred_for("b", 100) == 0  # no longer configured: not deferred
    assert board.deferred_for("c", 100) == 5  # shorter than the cap: unchanged
    assert not math.isinf(board.get("a").deferred_until)
