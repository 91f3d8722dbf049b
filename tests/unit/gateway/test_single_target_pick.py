"""A model with one target is picked by a written-out path: it must decide exactly as the general
one does (panic mode, probes, deferrals, capacity, exclusion), and leave the same health state."""

from __future__ import annotations

import dataclasses
import itertools
import random

import pytest

from modelgate_gateway.config import Strategy
from modelgate_gateway.runtime import TargetRuntime
from modelgate_gateway.upstream.balancing import DeploymentHealth, HealthBoard, pick

NOW = 100.0
STATES = [
    DeploymentHealth(consecutive_failures=failures, cooldown_until=cooldown, deferred_until=deferred, probing=probing)
    for failures, cooldown, deferred, probing in itertools.product(
        (0, 3), (0.0, NOW - 1, NOW, NOW + 1), (0.0, NOW, NOW + 1), (False, True)
    )
]


def _decide(state: DeploymentHealth, targets: tuple[TargetRuntime, ...], **kw: object) -> tuple[str | None, bool]:
    board = HealthBoard()
    board._states["a"] = dataclasses.replace(state)
    chosen = pick(Strategy.WEIGHTED_RANDOM, targets, board, now=NOW, rng=random.Random(0), **kw)  # type: ignore[arg-type]
    return chosen, board.get("a").probing


@pytest.mark.parametrize("weight", [1, 0])
@pytest.mark.parametrize("state", STATES)
@pytest.mark.parametrize("room", [True, False])
def test_one_target_is_decided_as_the_general_path_decides(state: DeploymentHealth, weight: int, room: bool) -> None:
    target = TargetRuntime("a", weight)
    capacity = {"capacity": lambda name: room}
    # The general path: a second target that is excluded leaves the same single candidate.
    general = _decide(state, (target, TargetRuntime("x", 1)), exclude={"x"}, **capacity)
    assert _decide(state, (target,), **capacity) == general
    assert _decide(state, (target,), exclude={"a"}, **capacity) == (None, state.probing)


def test_a_cooled_down_single_target_gets_exactly_one_probe_flag() -> None:
    board = HealthBoard()
    board.record_failure("a", NOW - 10, threshold=1, cooldown_seconds=5)
    assert pick(Strategy.WEIGHTED_RANDOM, (TargetRuntime("a", 1),), board, now=NOW, rng=random.Random(0)) == "a"
    assert board.get("a").probing  # the request is the probe; its success ends the cooldown
    assert board.record_success("a", 0.1) is True
    assert not board.get("a").probing and board.get("a").cooldown_until == 0.0
