"""Waiting for a rate-limited deployment, only once nothing else can serve the request.

A 429's ``Retry-After`` defers its deployment (see :mod:`.balancing`), and the executor moves
on: other deployments of the model first, then the fallback models. Only when that chain is
exhausted does a request wait, and only for a deployment that is merely busy: one a
Retry-After defers (this request's 429 or an earlier one's), never one that failed otherwise.
The waits of one request add up to at most the model's ``retry.maxRetryAfterSeconds`` and end
before its deadline. A pinned call (its deployment holds the response's state) has nothing else
to try: it also retries its deployment after other retryable failures, after a short pause.

When the request cannot wait, :meth:`Waits.outcome` says when a rate-limited deployment takes
requests again, so the client gets a 429 with a truthful ``Retry-After`` rather than the
last fallback's error.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence

from ..observability.recording import AttemptOutcome
from ..runtime import ModelRuntime
from .balancing import HealthBoard
from .fallback import Failure

PINNED_RETRY_PAUSE = 0.2
"""Pause before a pinned deployment is tried again after a failure without a Retry-After."""

_Candidate = tuple[float, str, ModelRuntime | None, bool]
"""(seconds to wait, deployment, model it serves, rate limited)."""


class Waits:
    """Per request, made on its first failure. ``models`` is the request's chain, in order."""

    __slots__ = ("_board", "_budget", "_deadline", "_given_up", "_models", "_pinned")

    def __init__(self, board: HealthBoard, models: Sequence[ModelRuntime | None], pinned: str | None,
                 deadline: float, max_wait: float) -> None:
        self._board = board
        self._models = models
        self._pinned = pinned
        self._deadline = deadline
        self._budget = max_wait
        self._given_up: set[str] = set()

    def give_up(self, name: str) -> None:
        """Never wait for this deployment (it cannot serve the request at all)."""
        self._given_up.add(name)

    async def wait(self, failures: list[Failure],
                   capacity: Callable[[str], bool]) -> tuple[ModelRuntime | None, str] | None:
        """Sleep until the soonest candidate may be tried; (model, deployment), or None if none may."""
        while True:  # bounded: every pass sleeps (out of a finite budget) or gives a deployment up
            now = time.monotonic()
            candidates = self._candidates(failures, now)
            if not candidates:
                return None
            delay, name, model, _ = min(candidates, key=lambda c: c[0])  # the first of equals: chain order
            if delay > self._budget or now + delay >= self._deadline:
                return None
            if delay > 0:
                await asyncio.sleep(delay)
                self._budget -= delay
                if model is not None and self._board.deferred_for(name, time.monotonic()) > 0:
                    continue  # another request's 429 deferred it again meanwhile
            if not capacity(name):
                self.give_up(name)
                continue
            return model, name

    def outcome(self, failures: list[Failure], tried: set[str]) -> tuple[list[Failure], float | None]:
        """The failures to report (deferred deployments never tried included) and the seconds until
        a rate-limited deployment takes requests again (None when none would)."""
        limited = [c for c in self._candidates(failures, time.monotonic()) if c[3]]
        if not limited:
            return failures, None
        summary = failures + [Failure(name, AttemptOutcome.SKIPPED, "rate limited", None, delay)
                              for delay, name, _, _ in limited if name not in tried]
        return summary, min(delay for delay, _, _, _ in limited)

    def _candidates(self, failures: list[Failure], now: float) -> list[_Candidate]:
        last = {f.deployment: f for f in failures}  # the latest failure of each deployment
        if self._pinned is not None:
            return self._pinned_candidate(last, now)
        found: list[_Candidate] = []
        seen: set[str] = set()
        for model in self._models:
            if model is None:
                continue
            for target in model.targets:
                name = target.deployment
                if name in seen or name in self._given_up:
                    continue
                seen.add(name)
                failure = last.get(name)
                deferred = self._board.deferred_for(name, now)
                if failure is None:
                    if deferred > 0:  # skipped: an earlier request's 429 defers it
                        found.append((deferred, name, model, True))
                elif failure.retry_after is not None:  # busy, with a time to come back (a 503 may say)
                    limited = failure.outcome is AttemptOutcome.RATE_LIMITED
                    found.append((deferred if limited else failure.retry_after, name, model, limited))
        return found

    def _pinned_candidate(self, last: dict[str, Failure], now: float) -> list[_Candidate]:
        name = self._pinned
        model = self._models[0]
        if name is None or name in self._given_up:
            return []
        # Follow-up calls (no model) are not balanced, so deferrals do not stop them.
        deferred = self._board.deferred_for(name, now) if model is not None else 0.0
        failure = last.get(name)
        if deferred > 0:
            return [(deferred, name, model, True)]
        if failure is None or not failure.retryable:
            return []
        if failure.retry_after is None:
            return [(PINNED_RETRY_PAUSE, name, model, False)]
        limited = failure.outcome is AttemptOutcome.RATE_LIMITED
        # With a model, a 429's time is the deferral (over, or "Retry-After: 0", when we get here).
        return [(0.0 if limited and model is not None else failure.retry_after, name, model, limited)]
