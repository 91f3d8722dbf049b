"""What clients see of governance: ``x-ratelimit-*`` headers and OpenAI-shaped 429s and 503s.

The headers are OpenAI's, so SDKs and client libraries that pace themselves on them work
unchanged: ``x-ratelimit-{limit,remaining,reset}-{requests,tokens}``; resets are durations in
OpenAI's notation (``20ms``, ``1.5s``, ``6m0s``). When both a key and its tenant limit the same
thing, the one with less left is shown. A 429 carries ``Retry-After`` (whole seconds) and
``retry-after-ms``; for an exhausted budget also ``x-should-retry: false``, which tells the
official SDKs not to retry what only the next budget window (or an operator) can fix.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from ..errors import GatewayError
from .ledger import Counts, Denial
from .policy import NANO_USD, Subject


class RateLimited(GatewayError):
    status = 429
    type = "requests"
    code = "rate_limit_exceeded"


class QuotaExceeded(GatewayError):
    status = 429
    type = "insufficient_quota"
    code = "insufficient_quota"


class LimitsUnavailable(GatewayError):
    """fail-closed while Redis cannot be reached."""

    status = 503
    type = "server_error"
    code = "limits_unavailable"


def duration(seconds: float) -> str:
    """OpenAI's reset notation: ``250ms``, ``1s``, ``12.5s``, ``6m0s``."""
    ms = max(math.ceil(seconds * 1000), 0)
    if ms < 1000:
        return f"{ms}ms"
    minutes, rest = divmod(ms, 60_000)
    secs = f"{rest / 1000:.3f}".rstrip("0").rstrip(".")
    return f"{minutes}m{secs}s" if minutes else f"{secs}s"


def rate_headers(subjects: Sequence[Subject], counts: Sequence[Counts], reset_seconds: float) -> dict[str, str]:
    """The six x-ratelimit headers for what the subjects limit (none for what nothing limits)."""
    headers: dict[str, str] = {}
    requests = [(s.limits.requests_per_minute, c.requests) for s, c in zip(subjects, counts, strict=True)
                if s.limits.requests_per_minute]
    tokens = [(s.limits.tokens_per_minute, c.tokens) for s, c in zip(subjects, counts, strict=True)
              if s.limits.tokens_per_minute]
    reset = duration(reset_seconds)
    for kind, pairs in (("requests", requests), ("tokens", tokens)):
        if pairs:
            limit, used = min(pairs, key=lambda p: p[0] - p[1])
            headers[f"x-ratelimit-limit-{kind}"] = str(limit)
            headers[f"x-ratelimit-remaining-{kind}"] = str(max(limit - used, 0))
            headers[f"x-ratelimit-reset-{kind}"] = reset
    return headers


def denial_error(denial: Denial, counts: Counts, retry_seconds: float, headers: dict[str, str]) -> GatewayError:
    """The 429 for a denied request; ``headers`` (the rate headers) are sent with it."""
    subject, limits = denial.subject, denial.subject.limits
    who = f"{'API key' if subject.kind == 'key' else 'tenant'} {subject.name}"
    wait = max(retry_seconds, 0.001)
    retry = {"Retry-After": str(math.ceil(wait)), "retry-after-ms": str(math.ceil(wait * 1000))}
    if denial.limit == "budget":
        return QuotaExceeded(
            f"You exceeded the budget of {who}: ${counts.spent_nano / NANO_USD:.6f} spent of "
            f"${limits.budget_nano / NANO_USD:.6f} per {limits.window.value} window. "
            "Ask the key's owner to raise it, or wait for the next window.",
            headers={**headers, **retry, "x-should-retry": "false"})
    if denial.limit == "concurrency":
        message = (f"Too many concurrent requests for {who}: limit {limits.concurrency}, in flight "
                   f"{counts.in_flight}. Retry when one of them has finished.")
    elif denial.limit == "requests":
        message = (f"Rate limit reached for {who} on requests per min (RPM): limit "
                   f"{limits.requests_per_minute}, used {counts.requests}. Please try again in {duration(wait)}.")
    else:
        message = (f"Rate limit reached for {who} on tokens per min (TPM): limit {limits.tokens_per_minute}, "
                   f"used {counts.tokens}. Please try again in {duration(wait)}.")
    err = RateLimited(message, headers={**headers, **retry})
    if denial.limit == "tokens":
        err.type = "tokens"
    return err
