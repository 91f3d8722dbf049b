"""Failure classification and the error a client gets when everything failed."""

from __future__ import annotations

import pytest

from modelgate_gateway.observability.recording import AttemptOutcome
from modelgate_gateway.upstream.fallback import (
    Failure,
    exhausted_error,
    outcome_for_status,
    retry_after_seconds,
)


@pytest.mark.parametrize(("status", "outcome"), [
    (200, AttemptOutcome.SUCCESS), (400, AttemptOutcome.CLIENT_ERROR), (404, AttemptOutcome.CLIENT_ERROR),
    (401, AttemptOutcome.AUTH_ERROR), (403, AttemptOutcome.AUTH_ERROR), (408, AttemptOutcome.TIMEOUT),
    (429, AttemptOutcome.RATE_LIMITED), (500, AttemptOutcome.SERVER_ERROR), (503, AttemptOutcome.SERVER_ERROR),
])
def test_status_classification(status: int, outcome: AttemptOutcome) -> None:
    assert outcome_for_status(status) is outcome


def test_only_client_errors_are_final() -> None:
    assert not Failure("a", AttemptOutcome.CLIENT_ERROR, "").retryable
    assert all(Failure("a", o, "").retryable for o in AttemptOutcome if o is not AttemptOutcome.CLIENT_ERROR)


@pytest.mark.parametrize(("headers", "seconds"), [
    ({"Retry-After": "7"}, 7.0),
    ({"Retry-After": "1.5"}, 1.5),
    ({"retry-after-ms": "250", "Retry-After": "9"}, 0.25),
    ({"Retry-After": "Wed, 21 Oct 2015 07:28:10 GMT"}, 10.0),
    ({"Retry-After": "soon"}, None),
    ({}, None),
])
def test_retry_after_parsing(headers: dict, seconds: float | None) -> None:
    now = 1445412480.0  # 07:28:00 GMT that day
    assert retry_after_seconds(headers, now=now) == seconds


def test_exhausted_error_reflects_the_last_failure() -> None:
    timeout = exhausted_error([Failure("a", AttemptOutcome.SERVER_ERROR, "", 500),
                               Failure("b", AttemptOutcome.TIMEOUT, "")], 2)
    assert timeout.status == 504 and "a: returned HTTP 500" in timeout.message and "b: timed out" in timeout.message
    limited = exhausted_error([Failure("a", AttemptOutcome.RATE_LIMITED, "", 429, 12.4)], 1)
    # Rounded up: a client told 12 while the upstream said 12.4 would come back too early.
    assert limited.status == 429 and limited.type == "rate_limit_error" and limited.headers["Retry-After"] == "13"
    assert exhausted_error([], 0).status == 503
