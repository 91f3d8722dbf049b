"""Classify upstream failures once, and decide what the client sees when every attempt failed.

Only this module decides what is retryable: connect errors, timeouts before the first byte,
429, 5xx, and 401/403 (a misconfigured deployment key must not fail a request that another
deployment can serve; its body is never shown, as it may echo part of the key). Any other 4xx is
the client's fault and is passed through unchanged.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Mapping
from dataclasses import dataclass

from ..errors import GatewayError, UpstreamFailed
from ..recording import AttemptOutcome


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


def retry_after_seconds(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds from ``retry-after-ms`` / ``Retry-After`` (delta seconds or HTTP date)."""
    raw_ms = headers.get("retry-after-ms")
    if raw_ms:
        try:
            return max(0.0, float(raw_ms) / 1000)
        except ValueError:
            pass
    raw = headers.get("Retry-After")
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (now if now is not None else time.time()))


_STATUS_TEXT = {
    AttemptOutcome.TIMEOUT: "timed out before the first byte",
    AttemptOutcome.CONNECT_ERROR: "connection failed",
    AttemptOutcome.RATE_LIMITED: "rate limited (429)",
    AttemptOutcome.AUTH_ERROR: "rejected the gateway's upstream credentials",
}


def describe(failure: Failure) -> str:
    text = _STATUS_TEXT.get(failure.outcome)
    if text is None:
        text = f"returned HTTP {failure.status}" if failure.status else failure.detail
    return f"{failure.deployment}: {text}"


def exhausted_error(failures: list[Failure], attempts: int) -> GatewayError:
    """The error for a request whose every attempt failed, naming each failure."""
    if not failures:
        return UpstreamFailed(
            "No deployment of this model can take the request right now (all at capacity).",
            code="no_capacity",
            status=503,
        )
    summary = "; ".join(describe(f) for f in failures[-5:])
    last = failures[-1]
    message = f"All {attempts} attempt(s) failed: {summary}."
    if last.outcome is AttemptOutcome.RATE_LIMITED:
        err = UpstreamFailed(message, code="rate_limit_exceeded", status=429)
        err.type = "rate_limit_error"
        if last.retry_after is not None:
            err.headers["Retry-After"] = str(max(1, round(last.retry_after)))
        return err
    if last.outcome is AttemptOutcome.TIMEOUT:
        return UpstreamFailed(message, code="upstream_timeout", status=504)
    if last.outcome is AttemptOutcome.CONNECT_ERROR:
        return UpstreamFailed(message, code="upstream_unreachable", status=502)
    return UpstreamFailed(message, code="upstream_error", status=502)
