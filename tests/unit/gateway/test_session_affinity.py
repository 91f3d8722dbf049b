"""Rendezvous hashing of sessions over a model's deployments (upstream/affinity.py)."""

from __future__ import annotations

from collections import Counter

from modelgate_gateway.runtime import TargetRuntime
from modelgate_gateway.upstream.affinity import pick_for_session, ranked, session_of, strip_org_bound
from modelgate_gateway.upstream.balancing import HealthBoard

ABC = (TargetRuntime("a", 1.0), TargetRuntime("b", 1.0), TargetRuntime("c", 1.0))
SESSIONS = [f"k:session-{i}" for i in range(3000)]


def _homes(targets: tuple[TargetRuntime, ...]) -> dict[str, str]:
    return {s: ranked(s, targets)[0] for s in SESSIONS}


def test_a_session_always_ranks_the_same_way_and_sessions_spread() -> None:
    homes = _homes(ABC)
    assert homes == _homes(ABC)
    shares = Counter(homes.values())
    assert all(900 < shares[name] < 1100 for name in "abc"), shares


def test_weights_set_the_share_of_sessions() -> None:
    shares = Counter(_homes((TargetRuntime("a", 1.0), TargetRuntime("b", 3.0))).values())
    assert 650 < shares["a"] < 850, shares  # a quarter of 3000


def test_removing_a_deployment_moves_only_its_sessions_and_adding_one_takes_only_new_ones() -> None:
    before = _homes(ABC)
    without_c = _homes(ABC[:2])
    assert all(without_c[s] == home for s, home in before.items() if home != "c")
    with_d = _homes((*ABC, TargetRuntime("d", 1.0)))
    moved = {s for s in SESSIONS if with_d[s] != before[s]}
    assert moved and all(with_d[s] == "d" for s in moved)


def test_standbys_rank_after_every_weighted_deployment() -> None:
    targets = (TargetRuntime("standby", 0.0), *ABC)
    assert all(ranked(s, targets)[-1] == "standby" for s in SESSIONS[:200])


def test_a_session_whose_deployment_cannot_serve_takes_its_next_choice() -> None:
    board = HealthBoard()
    session = SESSIONS[0]
    order = ranked(session, ABC)
    first, second, _ = order
    assert pick_for_session(order, board, now=10.0) == first
    board.get(first).cooldown_until = 20.0
    board.get(first).consecutive_failures = 3
    assert pick_for_session(order, board, now=10.0) == second
    assert pick_for_session(order, board, now=10.0, exclude={second}) not in (first, second)
    assert pick_for_session(order, board, now=25.0) == first  # cooldown over: the probe goes home
    assert board.get(first).probing


def test_session_signals_in_order_of_precedence() -> None:
    headers = {"session_id": "s-1"}
    assert session_of({"prompt_cache_key": "p"}, headers, ["session_id"]) == "k:p"
    assert session_of({}, headers, ["x-other", "session_id"]) == "h:s-1"
    assert session_of({}, headers, []) is None


def test_org_bound_items_are_stripped_and_counted() -> None:
    items = [{"type": "message", "role": "user", "content": "hi"},
             {"type": "reasoning", "encrypted_content": "gAAA"}, {"type": "compaction", "encrypted_content": "gAAB"}]
    assert strip_org_bound(items) == ([items[0]], 2)
    assert strip_org_bound(items[:1]) is None
    assert strip_org_bound("plain text") is None


def test_the_bridges_own_compaction_items_stay_for_chat_deployments_only() -> None:
    bridge = {"type": "compaction", "encrypted_content": "mgc1.c3VtbWFyeQ=="}
    foreign = {"type": "compaction", "encrypted_content": "gAAAAB"}
    items = [bridge, foreign, {"type": "reasoning", "encrypted_content": "gAAAAC"}]
    assert strip_org_bound(items, keep_bridge_items=True) == ([bridge], 2)
    assert strip_org_bound(items) == ([], 3)
