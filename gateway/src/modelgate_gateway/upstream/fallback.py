"""Classify upstream failures once, and decide what the client sees when every attempt failed.

Only this module decides what is retryable: connect errors, timeouts before the first byte,
429, 5xx, and 401/403 (a misconfigured deployment key must not fail a request that another
deployment can serve; its body is never shown, as it may echo part of the key). Any other 4xx is
the client's fault and is passed through unchanged.

``Retry-After`` is upstream input like any other: a value that is not a finite, non-negative
number of seconds (or a date) is ignored, and a huge one is cut to :data:`RETRY_AFTER_CEILING`
here and to the model's ``retry.retryAfterCapSeconds`` by the executor, so one bad header can
neither eject a deployment for good nor reach a client as an absurd number.
"""

from __future__ import annotations

import datetime
import email.utils
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass

from ..errors import GatewayError, UpstreamFailed
from ..observability.recording import AttemptOutcome


@dataclass(frozen=True, slots=True)
class Failure:
    deployment: str
    outcome: AttemptOutcome
    detail: str
    status: int | None = None
    retry_after: float | None = None

    @property
    def retryable(self) -> bool:
        return self.outcome is not AttemptOutcome.CLIENT_ERROR


def outcome_for_status(status: int) -> AttemptOutcome:
    """How an upstream's status is treated. 3xx is an upstream error: the gateway never follows
    redirects (a Responses upstream has no reason to send one) and never relays one to clients."""
    if status < 300:
        return AttemptOutcome.SUCCESS
    if status < 400:
        return AttemptOutcome.SERVER_ERROR
    if status == 429:
        return AttemptOutcome.RATE_LIMITED
    if status in (401, 403):
        return AttemptOutcome.AUTH_ERROR
    if status == 408:
        return AttemptOutcome.TIMEOUT
    if status >= 500:
        return AttemptOutcome.SERVER_ERROR
    return AttemptOutcome.CLIENT_ERROR


RETRY_AFTER_CEILING = 86400.0
"""Longest Retry-After taken from an upstream at all (a day); the per-model cap is far lower."""


def _seconds(raw: str, scale: float = 1.0) -> float | None:
    """A delta-seconds value: None unless it is a non-negative number (NaN, -1 are not)."""
    try:
        value = float(raw) * scale
    except ValueError:
        return None
    if not value >= 0:  # also catches NaN
        return None
    return min(value, RETRY_AFTER_CEILING)  # inf, 1e400, 999999999: "very long", not "never"


def retry_after_seconds(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds from ``retry-after-ms`` / ``Retry-After`` (delta seconds or HTTP date), at most
    :data:`RETRY_AFTER_CEILING`; None when absent or unusable."""
    raw_ms = headers.get("retry-after-ms")
    if raw_ms:
        found = _seconds(raw_ms, 0.001)
        if found is not None:
            return found
    raw = headers.get("Retry-After")
    if not raw:
        return None
    found = _seconds(raw)
    if found is not None:
        return found
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # "-0000": UTC by RFC 5322, not the host's local time
        when = when.replace(tzinfo=datetime.UTC)
    delay = when.timestamp() - (now if now is not None else time.time())
    return min(max(0.0, delay), RETRY_AFTER_CEILING)


_STATUS_TEXT = {
    AttemptOutcome.TIMEOUT: "timed out before the first byte",
    AttemptOutcome.CONNECT_ERROR: "connection failed",
    AttemptOutcome.RATE_LIMITED: "rate limited (429)",
    AttemptOutcome.AUTH_ERROR: "rejected the gateway's upstream credentials",
}


def describe(failure: Failure) -> str:
    if failure.outcome is AttemptOutcome.SKIPPED:  # deferred by an earlier Retry-After: nothing sent
        wait = f" for {math.ceil(failure.retry_after)} s" if failure.retry_after is not None else ""
        return f"{failure.deployment}: rate limited, not sent (its Retry-After runs{wait})"
    text = _STATUS_TEXT.get(failure.outcome)
    if text is None:
        text = f"returned HTTP {failure.status}" if failure.status else failure.detail
    return f"{failure.deployment}: {text}"


def exhausted_error(failures: list[Failure], attempts: int, retry_after: float | None = None) -> GatewayError:
    """The error for a request whose every attempt failed, naming each failure.

    ``retry_after`` is the time until a rate-limited deployment of the request's models takes
    requests again; when there is one the answer is a 429 telling the client to come back then,
    whatever failed last (a fallback's 5xx is not the reason the request could not be served).
    """
    if not failures:
        return UpstreamFailed(
            "No deployment of this model can take the request right now (all at capacity).",
            code="no_capacity",
            status=503,
        )
    summary = "; ".join(describe(f) for f in failures[-5:])
    if attempts:
        message = f"All {attempts} attempt(s) failed: {summary}."
    else:
        message = f"No deployment could take the request: {summary}."
    last = failures[-1]
    if retry_after is None and last.outcome is AttemptOutcome.RATE_LIMITED:
        retry_after = last.retry_after
    if retry_after is not None or last.outcome is AttemptOutcome.RATE_LIMITED:
        err = UpstreamFailed(message, code="rate_limit_exceeded", status=429)
        err.type = "rate_limit_error"
        if retry_after is not None:  # finite and bounded by the parser and the model's cap
            err.headers["Retry-After"] = str(max(1, math.ceil(retry_after)))
        return err
    if last.outcome is AttemptOutcome.TIMEOUT:
        return UpstreamFailed(message, code="upstream_timeout", status=504)
    if last.outcome is AttemptOutcome.CONNECT_ERROR:
        return UpstreamFailed(message, code="upstream_unreachable", status=502)
    return UpstreamFailed(message, code="upstream_error", status=502)
