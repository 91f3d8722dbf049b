"""Pick a deployment for a model: weighted random, least outstanding, or lowest latency.

Pure logic over per-deployment health state; clock values and randomness come in as arguments
so tests are exact. Health state is keyed by deployment name and outlives config reloads, so a
weight edit does not forget that a deployment is failing.

Two things take a deployment out of rotation: a *cooldown* after consecutive failures (it may be
healthy again; when every target of a model cools down they are used anyway), and a *deferral*
by an upstream 429's ``Retry-After`` (the upstream said when it takes requests again: a deferred
deployment is never picked, the executor tries other deployments and fallback models first and
waits for it only when nothing else can serve).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from ..config import Strategy
from ..runtime import TargetRuntime

EWMA_ALPHA = 0.3  # weight of the newest latency sample; ~3 samples to adapt


@dataclass(slots=True)
class DeploymentHealth:
    outstanding: int = 0
    consecutive_failures: int = 0
    cooldown_until: float = 0.0
    """Monotonic time until which the deployment is skipped after failures."""
    deferred_until: float = 0.0
    """Monotonic time until which an upstream Retry-After keeps the deployment out of rotation."""
    ewma_first_byte: float | None = None
    probing: bool = False
    """Cooldown expired and one probe request is in flight; others keep skipping it."""
    error_ewma: float = 0.0
    """Moving share of failed attempts (same smoothing as the latency): adaptive weights."""

    def succeeded(self, first_byte_seconds: float | None) -> bool:
        """See :meth:`HealthBoard.record_success`; for a caller that holds the state already."""
        recovered = (
            self.probing or self.deferred_until > 0 or (self.consecutive_failures > 0 and self.cooldown_until > 0)
        )
        if recovered or self.consecutive_failures or self.cooldown_until:  # a healthy one has nothing to clear
            self.consecutive_failures = 0
            self.probing = False
            self.cooldown_until = 0.0
            self.deferred_until = 0.0
        if self.error_ewma:
            self.error_ewma -= EWMA_ALPHA * self.error_ewma
        if first_byte_seconds is not None:
            prev = self.ewma_first_byte
            self.ewma_first_byte = (
                first_byte_seconds if prev is None else prev + EWMA_ALPHA * (first_byte_seconds - prev)
            )
        return recovered


class ServerHealth(DeploymentHealth):
    """Health of one server of a pool deployment (key ``name@server``): its own cooldown, probe and
    in-flight count, and every change of that count counts for its deployment too (the deployment's
    ``maxConcurrentRequests`` and least-outstanding see all its servers' requests)."""

    __slots__ = ("_in_flight", "deployment")

    def __init__(self, deployment: DeploymentHealth) -> None:
        self._in_flight = 0
        self.deployment = deployment
        super().__init__()

    @property
    def outstanding(self) -> int:
        return self._in_flight

    @outstanding.setter
    def outstanding(self, value: int) -> None:
        self.deployment.outstanding += value - self._in_flight
        self._in_flight = value


class HealthBoard:
    """Mutable per-deployment state shared by all requests of one process."""

    def __init__(self) -> None:
        self._states: dict[str, DeploymentHealth] = {}

    def get(self, name: str) -> DeploymentHealth:
        state = self._states.get(name)
        if state is None:
            if "@" in name:  # a server of a pool (deployment names never hold "@")
                state = ServerHealth(self.get(name.partition("@")[0]))
            else:
                state = DeploymentHealth()
            self._states[name] = state
        return state

    def prune(self, keep: Iterable[str]) -> None:
        """Forget deployments that left the config (bounded memory across reloads)."""
        keep_set = set(keep)
        for name in [n for n in self._states if n not in keep_set]:
            if self._states[name].outstanding == 0:
                del self._states[name]

    def cooling_down(self, name: str, now: float) -> bool:
        state = self._states.get(name)
        return state is not None and state.cooldown_until > now

    def deferred_for(self, name: str, now: float) -> float:
        """Seconds until a deferred deployment takes requests again; 0 when it is not deferred."""
        state = self._states.get(name)
        return 0.0 if state is None else max(0.0, state.deferred_until - now)

    def record_success(self, name: str, first_byte_seconds: float | None) -> bool:
        """Returns True when this ended a cooldown/probe/deferral (health changed)."""
        return self.get(name).succeeded(first_byte_seconds)

    def record_failure(self, name: str, now: float, threshold: int, cooldown_seconds: float) -> bool:
        """Count a failure; returns True when the deployment enters cooldown now."""
        state = self.get(name)
        state.consecutive_failures += 1
        state.error_ewma += EWMA_ALPHA * (1.0 - state.error_ewma)
        if state.probing or state.consecutive_failures >= threshold:
            state.probing = False
            state.cooldown_until = now + cooldown_seconds
            return True
        return False

    def release_probe(self, name: str) -> None:
        """The probe ended without a verdict on health (client left, 4xx, not sent): let the next
        request probe again instead of leaving the deployment ejected for good."""
        state = self._states.get(name)
        if state is not None:
            state.probing = False

    def defer(self, name: str, until: float) -> None:
        """Skip a deployment until ``until`` (an upstream Retry-After), without counting a failure.

        The latest Retry-After wins, earlier or later: the upstream knows its own limits best, and
        the caller has already cut the value to the deployment's cap.
        """
        self.get(name).deferred_until = until

    def limit_deferrals(self, caps: Mapping[str, float], now: float) -> None:
        """After a reload: no deferral outlasts its deployment's current cap (``RuntimeConfig.
        retry_after_caps``), and a deployment that left the config is not deferred at all."""
        for name, state in self._states.items():
            if state.deferred_until > now:
                state.deferred_until = min(state.deferred_until, now + caps.get(name, 0.0))


def available(board: HealthBoard, name: str, now: float, capacity: Callable[[str], bool]) -> bool:
    """Whether deployment ``name`` may take a request now (also used by session affinity)."""
    state = board.get(name)
    if not capacity(name):
        return False
    if state.cooldown_until > now or state.deferred_until > now:
        return False
    if state.cooldown_until and state.consecutive_failures:
        # Cooldown expired: let exactly one probe through until it reports back.
        return not state.probing
    return True


def claim(board: HealthBoard, name: str, now: float) -> str:
    """``name`` was chosen: when its cooldown has expired, this request is its one probe."""
    state = board.get(name)
    if state.cooldown_until and state.consecutive_failures and state.cooldown_until <= now:
        state.probing = True
    return name


def pick(
    strategy: Strategy,
    targets: tuple[TargetRuntime, ...],
    board: HealthBoard,
    *,
    now: float,
    rng: random.Random,
    exclude: frozenset[str] | set[str] = frozenset(),
    capacity: Callable[[str], bool] = lambda _name: True,
    floor: float | None = None,
) -> str | None:
    """Name of the deployment to try next, or None when no target is usable.

    ``floor``: adaptive weights (weighted-random only; see :func:`effective_weight`); None: fixed.

    Weight-0 targets are standbys, used only when no weighted target is available. When every
    target is cooling down, cooldown is ignored for this model (Envoy's "panic mode"), so a
    transient failure of a single-deployment model cannot lock it out for the whole cooldown.
    Deferred targets (Retry-After) are never picked, panic or not: see the module docstring.
    """
    if len(targets) == 1:
        # One target (most models): what the general path below decides for it, written out. Its
        # cooldown or a probe in flight would only send it to panic mode, which picks it anyway:
        # capacity and a deferral are what keep it out.
        name = targets[0].deployment
        if name in exclude:
            return None
        state = board.get(name)
        if state.deferred_until > now or not capacity(name):
            return None
        if state.cooldown_until and state.consecutive_failures and state.cooldown_until <= now:
            state.probing = True
        return name
    candidates = [t for t in targets if t.deployment not in exclude]
    if not candidates:
        return None
    usable = [t for t in candidates if available(board, t.deployment, now, capacity)]
    if not usable:
        usable = [t for t in candidates if capacity(t.deployment) and board.get(t.deployment).deferred_until <= now]
        if not usable:
            return None
    weighted = [t for t in usable if t.weight > 0] or usable
    chosen = _choose(strategy, weighted, board, rng, floor)
    state = board.get(chosen)
    if state.cooldown_until and state.consecutive_failures and state.cooldown_until <= now:
        state.probing = True
    return chosen


def effective_weight(target: TargetRuntime, board: HealthBoard, best_latency: float | None, floor: float) -> float:
    """A target's weight scaled by how it does against the best of its model, within [floor, 1]:

    ``latency factor = best first-byte EWMA / its own`` (1 until it is measured) times
    ``error factor = 1 - its error EWMA``. A slow or failing deployment gets less traffic, never
    less than ``floor`` of its weight, so it keeps being measured and wins its share back as it
    recovers (both EWMAs follow the latest samples).
    """
    state = board.get(target.deployment)
    factor = 1.0 - state.error_ewma
    own = state.ewma_first_byte
    if best_latency is not None and own is not None and own > 0:
        factor *= min(1.0, best_latency / own)
    return target.weight * max(floor, min(1.0, factor))


def best_latency(targets: Iterable[TargetRuntime], board: HealthBoard) -> float | None:
    samples = [s for t in targets if (s := board.get(t.deployment).ewma_first_byte) is not None]
    return min(samples) if samples else None


def _choose(
    strategy: Strategy, targets: list[TargetRuntime], board: HealthBoard, rng: random.Random, floor: float | None
) -> str:
    if len(targets) == 1:
        return targets[0].deployment
    if strategy is Strategy.LEAST_OUTSTANDING:
        # Outstanding requests per unit of weight; random tie-break spreads equal loads.
        def load(t: TargetRuntime) -> tuple[float, float]:
            weight = t.weight if t.weight > 0 else 1.0
            return (board.get(t.deployment).outstanding / weight, rng.random())

        return min(targets, key=load).deployment
    if strategy is Strategy.LOWEST_LATENCY:
        unsampled = [t for t in targets if board.get(t.deployment).ewma_first_byte is None]
        if unsampled:  # explore: every deployment gets measured before it is judged
            return rng.choice(unsampled).deployment

        def latency(t: TargetRuntime) -> float:
            ewma = board.get(t.deployment).ewma_first_byte or 0.0
            return ewma * (1 + board.get(t.deployment).outstanding * 0.1)

        return min(targets, key=latency).deployment
    if floor is not None:
        best = best_latency(targets, board)
        return _weighted(targets, [effective_weight(t, board, best, floor) for t in targets], rng)
    total = sum(t.weight for t in targets)
    if total <= 0:
        return rng.choice(targets).deployment
    point = rng.random() * total
    for target in targets:
        point -= target.weight
        if point < 0:
            return target.deployment
    return targets[-1].deployment


def _weighted(targets: list[TargetRuntime], weights: list[float], rng: random.Random) -> str:
    total = sum(weights)
    if total <= 0:
        return rng.choice(targets).deployment
    point = rng.random() * total
    for target, weight in zip(targets, weights, strict=True):
        point -= weight
        if point < 0:
            return target.deployment
    return targets[-1].deployment
