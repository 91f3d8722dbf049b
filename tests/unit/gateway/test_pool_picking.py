"""Picking a server of a pool: by load (power of two choices), by session, with stale or failed metrics."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import pytest

from modelgate_gateway.config import validate_data
from modelgate_gateway.runtime import RuntimeConfig, compile_runtime
from modelgate_gateway.upstream.balancing import HealthBoard
from modelgate_gateway.upstream.picking import load_of, pick_member, saturated, server_for
from modelgate_gateway.upstream.pools import Pool, PoolBoard, ServerGone

URLS = ["http://10.0.0.1:8000/v1", "http://10.0.0.2:8000/v1", "http://10.0.0.3:8000/v1"]
NOW = 1000.0


def _runtime(metrics: dict[str, Any] | None = None) -> RuntimeConfig:
    """A pool of three servers; ``metrics``: its loadMetrics (None: none)."""
    deployment: dict[str, Any] = {"name": "pool", "baseUrls": URLS, "model": "m"}
    if metrics is not None:
        deployment["loadMetrics"] = {"staleSeconds": 5, "saturatedQueue": 8, **metrics}
    doc = {
        "apiVersion": "config.modelgate.dev/v1alpha1",
        "kind": "GatewayConfig",
        "spec": {"deployments": [deployment], "models": [{"name": "m", "targets": [{"deployment": "pool"}]}]},
    }
    return compile_runtime(validate_data(doc), {}, ".")


def _pool(metrics: dict[str, Any] | None = None) -> Pool:
    board = PoolBoard()
    board.sync(_runtime({} if metrics is None else metrics))
    pool = board.get("pool")
    assert pool is not None
    return pool


def _read(pool: Pool, index: int, *, running: float = 0, waiting: float = 0, kv: float = 0, at: float = NOW) -> None:
    sample = pool.members[index].load
    sample.running, sample.waiting, sample.kv_cache, sample.at = running, waiting, kv, at


def _picks(pool: Pool, board: HealthBoard, n: int = 300, **kw: Any) -> Counter[str]:
    rng = random.Random(7)
    found = Counter[str]()
    for _ in range(n):
        member = pick_member(pool, board, now=NOW, rng=rng, **kw)
        assert member is not None
        found[member.dep.member] += 1
    return found


def test_every_server_of_a_pool_is_its_own_runtime_with_its_own_endpoint_and_health_key() -> None:
    pool = _pool()
    assert [m.dep.member for m in pool.members] == ["10.0.0.1:8000", "10.0.0.2:8000", "10.0.0.3:8000"]
    first = pool.members[0].dep
    assert first.name == "pool" and first.health_key == "pool@10.0.0.1:8000"
    assert first.endpoint is not None and first.endpoint.origin == "http://10.0.0.1:8000"
    assert len({m.dep.pool_key for m in pool.members}) == 3


def test_a_queued_server_is_never_chosen_over_idle_ones() -> None:
    pool = _pool()
    _read(pool, 0, waiting=10)
    _read(pool, 1)
    _read(pool, 2)
    counts = _picks(pool, HealthBoard())
    assert counts["10.0.0.1:8000"] == 0
    assert counts["10.0.0.2:8000"] > 100 and counts["10.0.0.3:8000"] > 100


def test_kv_cache_pressure_counts_as_load() -> None:
    pool = _pool()
    member = pool.members[0]
    _read(pool, 0, kv=0.5)
    assert load_of(member, 0, pool.base.pool.metrics if pool.base.pool else None, NOW) == 0
    _read(pool, 0, kv=1.0)
    assert load_of(member, 0, pool.base.pool.metrics if pool.base.pool else None, NOW) == pytest.approx(8.0)


def test_a_stale_reading_is_ignored_and_the_gateways_in_flight_count_decides() -> None:
    pool = _pool()
    _read(pool, 0, waiting=50, at=NOW - 6)  # older than staleSeconds (5): ignored
    _read(pool, 1, at=NOW - 6)
    _read(pool, 2, at=NOW - 6)
    board = HealthBoard()
    board.get(pool.members[1].dep.health_key).outstanding = 4
    board.get(pool.members[2].dep.health_key).outstanding = 4
    counts = _picks(pool, board)
    assert counts["10.0.0.1:8000"] > 150  # the "queued" one, judged by its in-flight count of 0
    assert counts["10.0.0.2:8000"] + counts["10.0.0.3:8000"] < counts["10.0.0.1:8000"]


def test_without_metrics_servers_are_judged_by_in_flight_requests() -> None:
    board = PoolBoard()
    board.sync(_runtime(None))
    pool = board.get("pool")
    assert pool is not None and pool.base.pool is not None and pool.base.pool.metrics is None
    board_health = HealthBoard()
    board_health.get(pool.members[0].dep.health_key).outstanding = 3
    counts = _picks(pool, board_health)
    assert counts["10.0.0.1:8000"] == 0


def test_a_server_never_read_successfully_is_judged_by_in_flight_requests() -> None:
    pool = _pool()
    metrics = pool.base.pool.metrics if pool.base.pool else None
    member = pool.members[0]
    member.load.failures = 3  # every read failed: the sample was never taken
    assert load_of(member, 2, metrics, NOW) == 2.0
    assert not saturated(member, metrics, NOW)


def test_a_session_sticks_to_its_server_until_that_server_is_saturated() -> None:
    pool = _pool()
    board = HealthBoard()
    for index in range(3):
        _read(pool, index)
    rng = random.Random(1)
    first = pick_member(pool, board, now=NOW, rng=rng, session="k:user-1")
    assert first is not None
    assert {pick_member(pool, board, now=NOW, rng=rng, session="k:user-1") for _ in range(20)} == {first}
    sessions = {pick_member(pool, board, now=NOW, rng=rng, session=f"k:{i}").dep.member for i in range(60)}  # type: ignore[union-attr]
    assert len(sessions) == 3  # sessions spread over the servers
    _read(pool, pool.members.index(first), waiting=8)  # saturatedQueue reached
    moved = {pick_member(pool, board, now=NOW, rng=rng, session="k:user-1") for _ in range(20)}
    assert first not in moved


def test_a_cooling_server_is_skipped_and_all_cooling_servers_are_used_anyway() -> None:
    pool = _pool()
    board = HealthBoard()
    for member in pool.members[:2]:
        board.record_failure(member.dep.health_key, NOW, threshold=1, cooldown_seconds=30)
    assert set(_picks(pool, board, 50)) == {"10.0.0.3:8000"}
    board.record_failure(pool.members[2].dep.health_key, NOW, threshold=1, cooldown_seconds=30)
    assert len(_picks(pool, board, 100)) == 3  # panic mode


def test_tried_servers_are_excluded_and_none_is_left_after_all() -> None:
    pool = _pool()
    board = HealthBoard()
    tried = {m.dep.health_key for m in pool.members[:2]}
    assert set(_picks(pool, board, 20, exclude=tried)) == {"10.0.0.3:8000"}
    tried.add(pool.members[2].dep.health_key)
    assert pick_member(pool, board, now=NOW, rng=random.Random(0), exclude=tried) is None


def test_a_pinned_server_is_found_and_one_that_left_is_a_clear_error() -> None:
    runtime = _runtime()
    pools = PoolBoard()
    pools.sync(runtime)
    rng = random.Random(0)
    found = server_for(pools, HealthBoard(), rng, runtime, "pool@10.0.0.2:8000", tried=set(), session=None, updates={})
    assert found is not None and found.member == "10.0.0.2:8000"
    with pytest.raises(ServerGone) as gone:
        server_for(
            pools,
            HealthBoard(),
            rng,
            runtime,
            "pool@10.0.0.9:8000",
            tried=set(),
            session=None,
            updates={"previous_response_id": "resp_x"},
        )
    assert gone.value.status == 400 and gone.value.param == "previous_response_id"
    assert "10.0.0.9:8000" in gone.value.message and "no longer running" in gone.value.message
    with pytest.raises(ServerGone) as retrieved:
        server_for(pools, HealthBoard(), rng, runtime, "pool@10.0.0.9:8000", tried=set(), session=None, updates={})
    assert retrieved.value.status == 404 and retrieved.value.code == "response_server_gone"


def test_a_slow_servers_queue_costs_more_than_a_fast_ones() -> None:
    pool = _pool()
    board = HealthBoard()
    fast, slow = pool.members[0].dep.health_key, pool.members[1].dep.health_key
    board.record_success(fast, 0.02)
    board.record_success(slow, 0.2)  # ten times slower
    board.get(pool.members[2].dep.health_key).cooldown_until = NOW + 60  # out: a pair of two
    board.get(pool.members[2].dep.health_key).consecutive_failures = 3
    for index in range(3):
        _read(pool, index)
    assert set(_picks(pool, board, 50)) == {"10.0.0.1:8000"}  # idle both: the fast one
    _read(pool, 0, waiting=5)  # (5 + 1) x 0.02 < (0 + 1) x 0.2: still the fast one
    assert set(_picks(pool, board, 50)) == {"10.0.0.1:8000"}
    _read(pool, 0, waiting=12)  # (12 + 1) x 0.02 > 0.2: now the slow one
    assert set(_picks(pool, board, 50)) == {"10.0.0.2:8000"}


def test_a_servers_in_flight_requests_count_for_its_deployment() -> None:
    board = HealthBoard()
    board.get("pool@10.0.0.1:8000").outstanding += 1
    board.get("pool@10.0.0.2:8000").outstanding += 2
    assert board.get("pool").outstanding == 3
    board.get("pool@10.0.0.2:8000").outstanding -= 2
    assert board.get("pool").outstanding == 1 and board.get("pool@10.0.0.2:8000").outstanding == 0
    board.record_failure("pool@10.0.0.1:8000", NOW, threshold=1, cooldown_seconds=30)
    assert board.cooling_down("pool@10.0.0.1:8000", NOW) and not board.cooling_down("pool", NOW)
