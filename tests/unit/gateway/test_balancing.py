"""Pure balancing decisions with an injected clock and random source."""

from __future__ import annotations

import random
from collections import Counter

from modelgate_gateway.config import Strategy
from modelgate_gateway.runtime import TargetRuntime
from modelgate_gateway.upstream.balancing import HealthBoard, pick

A, B, C = TargetRuntime("a", 3), TargetRuntime("b", 1), TargetRuntime("c", 0)


def _pick(board: HealthBoard, targets=(A, B), now: float = 100.0, **kw) -> str | None:
    return pick(Strategy.WEIGHTED_RANDOM, tuple(targets), board, now=now, rng=kw.pop("rng", random.Random(1)), **kw)


def test_weighted_random_follows_weights() -> None:
    rng = random.Random(3)
    board = HealthBoard()
    counts = Counter(pick(Strategy.WEIGHTED_RANDOM, (A, B), board, now=0, rng=rng) for _ in range(4000))
    assert abs(counts["a"] / 4000 - 0.75) < 0.03


def test_zero_weight_target_is_standby_only() -> None:
    board = HealthBoard()
    assert {_pick(board, (A, C), rng=random.Random(i)) for i in range(50)} == {"a"}
    board.record_failure("a", 100.0, threshold=1, cooldown_seconds=30)
    assert _pick(board, (A, C)) == "c"


def test_excluded_targets_are_not_picked_and_none_is_returned_when_all_are() -> None:
    board = HealthBoard()
    assert _pick(board, exclude={"a"}) == "b"
    assert _pick(board, exclude={"a", "b"}) is None


def test_cooldown_skips_then_allows_exactly_one_probe() -> None:
    board = HealthBoard()
    assert board.record_failure("a", 100.0, threshold=2, cooldown_seconds=10) is False
    assert board.record_failure("a", 100.0, threshold=2, cooldown_seconds=10) is True
    assert {_pick(board, now=105, rng=random.Random(i)) for i in range(20)} == {"b"}
    assert _pick(board, (A,), now=111) == "a"  # cooldown over: the probe
    assert board.get("a").probing
    assert _pick(board, now=111, rng=random.Random(0)) == "b"  # others keep away while probing
    assert board.record_failure("a", 111, threshold=2, cooldown_seconds=10) is True  # failed probe re-cools
    assert board.record_success("a", 0.1) is True


def test_panic_mode_when_every_target_cools_down() -> None:
    board = HealthBoard()
    for name in ("a", "b"):
        board.record_failure(name, 100.0, threshold=1, cooldown_seconds=60)
    assert _pick(board, now=101) in {"a", "b"}


def test_capacity_full_targets_are_skipped() -> None:
    board = HealthBoard()
    assert _pick(board, capacity=lambda name: name != "a") == "b"
    assert _pick(board, capacity=lambda name: False) is None


def test_least_outstanding_uses_load_per_weight() -> None:
    board = HealthBoard()
    board.get("a").outstanding = 3  # 3 / weight 3 = 1.0
    board.get("b").outstanding = 2  # 2 / weight 1 = 2.0
    assert pick(Strategy.LEAST_OUTSTANDING, (A, B), board, now=0, rng=random.Random(0)) == "a"


def test_lowest_latency_explores_unsampled_then_exploits() -> None:
    board = HealthBoard()
    board.record_success("a", 0.5)
    assert pick(Strategy.LOWEST_LATENCY, (A, B), board, now=0, rng=random.Random(0)) == "b"
    board.record_success("b", 2.0)
    assert pick(Strategy.LOWEST_LATENCY, (A, B), board, now=0, rng=random.Random(0)) == "a"


def test_ewma_moves_towards_new_samples() -> None:
    board = HealthBoard()
    board.record_success("a", 1.0)
    board.record_success("a", 2.0)
    assert 1.0 < (board.get("a").ewma_first_byte or 0) < 2.0


def test_prune_forgets_removed_idle_deployments() -> None:
    board = HealthBoard()
    board.get("a")
    board.get("b").outstanding = 1
    board.prune({"c"})
    assert board.get("b").outstanding == 1 and board.get("a").outstanding == 0
