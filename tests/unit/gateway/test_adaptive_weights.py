"""Adaptive weights: traffic moves away from a slow or failing deployment, bounded, and comes back."""

from __future__ import annotations

import random
from collections import Counter

from modelgate_gateway.config import Strategy
from modelgate_gateway.runtime import TargetRuntime
from modelgate_gateway.upstream.balancing import HealthBoard, best_latency, effective_weight, pick

A, B = TargetRuntime("a", 1), TargetRuntime("b", 1)


def _shares(board: HealthBoard, floor: float | None, n: int = 4000) -> Counter[str | None]:
    rng = random.Random(5)
    return Counter(pick(Strategy.WEIGHTED_RANDOM, (A, B), board, now=0, rng=rng, floor=floor) for _ in range(n))


def test_a_slow_deployment_gets_less_traffic_but_never_less_than_the_floor() -> None:
    board = HealthBoard()
    for _ in range(10):
        board.record_success("a", 0.1)
        board.record_success("b", 2.0)  # twenty times slower
    best = best_latency((A, B), board)
    assert effective_weight(A, board, best, 0.1) == 1.0
    assert effective_weight(B, board, best, 0.1) == 0.1  # 0.05 by latency: held at the floor
    shares = _shares(board, 0.1)
    assert 0.06 < shares["b"] / 4000 < 0.13
    assert abs(_shares(board, None)["b"] / 4000 - 0.5) < 0.05  # fixed weights: unchanged


def test_errors_lower_the_weight_and_recovery_restores_it() -> None:
    board = HealthBoard()
    for _ in range(5):
        board.record_success("a", 0.2)
        board.record_failure("b", 0.0, threshold=1000, cooldown_seconds=1)
    degraded = effective_weight(B, board, best_latency((A, B), board), 0.2)
    assert 0.2 <= degraded < 0.5
    for _ in range(15):
        board.record_success("b", 0.2)
    recovered = effective_weight(B, board, best_latency((A, B), board), 0.2)
    assert recovered > 0.95


def test_effective_weight_stays_within_floor_and_configured_weight_whatever_the_signal() -> None:
    heavy = TargetRuntime("h", 5)
    rng = random.Random(2)
    for _ in range(200):
        board = HealthBoard()
        for _ in range(rng.randrange(0, 20)):
            if rng.random() < 0.5:
                board.record_failure("h", 0.0, threshold=10_000, cooldown_seconds=1)
            else:
                board.record_success("h", rng.uniform(0.001, 100))
        board.record_success("x", rng.uniform(0.001, 100))
        value = effective_weight(heavy, board, best_latency((heavy, TargetRuntime("x", 1)), board), 0.1)
        assert 0.5 - 1e-9 <= value <= 5.0
