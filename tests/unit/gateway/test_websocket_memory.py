"""What a client WebSocket remembers for store=false continuations stays bounded: a lane's last response, a byte cap."""

from __future__ import annotations

import orjson

from modelgate_gateway.handlers.websocket_memory import SocketMemory, as_items

ITEM = {"type": "message", "role": "user", "content": "x" * 80}


def test_a_lane_keeps_only_its_last_response_and_lanes_are_apart() -> None:
    memory = SocketMemory(limit=10_000)
    memory.remember("a", "resp_1", "dep", [ITEM], [])
    memory.remember("b", "resp_2", "dep", [ITEM], [])
    memory.remember("a", "resp_3", "dep", [ITEM], [ITEM])
    assert memory.get("resp_1") is None and memory.get("resp_2") is not None
    remembered = memory.get("resp_3")
    assert remembered is not None and orjson.loads(remembered.context) == [ITEM, ITEM]
    assert len(memory) == 2 and memory.size == sum(len(memory.get(r).context) for r in ("resp_2", "resp_3"))  # type: ignore[union-attr]


def test_the_byte_cap_evicts_the_oldest_and_refuses_what_never_fits() -> None:
    one = len(orjson.dumps([ITEM]))
    memory = SocketMemory(limit=2 * one)
    for lane in ("a", "b", "c"):
        memory.remember(lane, f"resp_{lane}", "dep", [ITEM], [])
    assert memory.get("resp_a") is None and memory.get("resp_b") is not None and memory.size <= 2 * one
    memory.remember("d", "resp_d", "dep", [ITEM] * 3, [])
    assert memory.get("resp_d") is None  # larger than the whole cap: not kept
    memory.forget("resp_b")
    assert memory.size == one and len(memory) == 1


def test_a_string_input_is_one_user_message() -> None:
    assert as_items("hi") == [{"type": "message", "role": "user", "content": "hi"}]
    assert as_items(None) == [] and as_items([ITEM]) == [ITEM]
