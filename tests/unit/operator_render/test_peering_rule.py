"""kopf's peering rule as the reconciler applies it: a live peer with priority >= ours pauses."""

import datetime

from modelgate_operator.kube.peering import blocking_peers

NOW = datetime.datetime(2026, 1, 1, 12, 0, tzinfo=datetime.UTC)


def _peer(priority: int, seconds_ago: int = 0, lifetime: int = 60) -> dict[str, object]:
    seen = NOW - datetime.timedelta(seconds=seconds_ago)
    return {"priority": priority, "lifetime": lifetime, "lastseen": seen.isoformat()}


def test_higher_or_equal_live_peers_block_and_lower_or_dead_ones_do_not() -> None:
    status = {"me": _peer(100), "high": _peer(200), "same": _peer(100), "low": _peer(50),
              "dead": _peer(900, seconds_ago=61), "gone": _peer(900, lifetime=0)}
    assert blocking_peers([status], "me", 100, NOW) == ["high", "same"]


def test_no_peering_object_or_only_ourselves_means_act() -> None:
    assert blocking_peers([], "me", 1, NOW) == []
    assert blocking_peers([{"me": _peer(1)}], "me", 1, NOW) == []


def test_any_watched_namespace_can_pause_and_bad_entries_are_ignored() -> None:
    statuses = [{"x": _peer(1)}, {"y": _peer(300), "z": "junk", "w": {"priority": "high"}}]
    assert blocking_peers(statuses, "me", 200, NOW) == ["y"]
