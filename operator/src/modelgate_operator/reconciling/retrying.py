"""Backoff between failed reconcile passes.

An API server that is down for minutes should cost one attempt (and one warning line) per
growing delay, not one every few seconds: the delay doubles per consecutive failure up to a cap,
and the first success resets it. Pure; the loop in :mod:`.reconciler` owns the clock.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class Backoff:
    initial: float
    """Delay after the first failure, in seconds."""
    maximum: float
    """Cap of the delay, in seconds."""
    failures: int = 0
    """Consecutive failed passes so far."""

    def failed(self, hint: float | None = None) -> float:
        """Count a failure; the seconds to wait before the next attempt. ``hint``: the error's
        own first delay, used instead of ``initial``."""
        self.failures += 1
        first = self.initial if hint is None else hint
        return float(min(first * 2 ** min(self.failures - 1, 32), max(self.maximum, first)))

    def succeeded(self) -> int:
        """Reset; returns how many failures came before this success."""
        failures, self.failures = self.failures, 0
        return failures
