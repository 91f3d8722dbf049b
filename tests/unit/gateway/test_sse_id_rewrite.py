"""Streams: the upstream response id is rewritten where it is an id, and nowhere else.

Before, every occurrence of the id's text was replaced: an upstream id ``resp`` turned
``"object":"response"`` and every ``response.*`` event type into garbage.
"""

from __future__ import annotations

import orjson
import pytest

from modelgate_gateway.streaming.sse import SseRelayState, iter_events

GATEWAY_ID = "resp_GATEWAY"


def _event(kind: str, payload: dict[str, object]) -> bytes:
    return f"event: {kind}\ndata: ".encode() + orjson.dumps({"type": kind, **payload}) + b"\n\n"


def _relay(stream: bytes, chunk: int = 0) -> bytes:
    state = SseRelayState(lambda upstream: GATEWAY_ID)
    pieces = [stream[i:i + chunk] for i in range(0, len(stream), chunk)] if chunk else [stream]
    return b"".join(state.feed(piece) for piece in pieces)


def _stream(rid: str, response_first_key: str = "id") -> bytes:
    response: dict[str, object] = {"id": rid, "object": "response", "status": "in_progress", "output": []}
    if response_first_key != "id":  # a server that writes the id after other fields
        response = {"object": "response", "status": "in_progress", "output": [], "id": rid}
    item = {"id": rid, "type": "message", "role": "assistant", "content": []}  # an item id that equals it
    done = {**response, "status": "completed", "output": [item], "metadata": {"note": rid}}
    return b"".join([
        _event("response.created", {"sequence_number": 0, "response": response}),
        _event("response.output_item.added", {"sequence_number": 1, "output_index": 0, "item": item}),
        _event("response.output_text.delta", {"sequence_number": 2, "item_id": rid, "delta": rid}),
        _event("response.output_text.delta", {"sequence_number": 3, "item_id": rid, "delta": f"{rid} \"{rid}\""}),
        _event("response.custom", {"sequence_number": 4, "response_id": rid}),
        _event("response.completed", {"sequence_number": 5, "response": done}),
    ])


@pytest.mark.parametrize("chunk", [0, 1, 7, 64])
@pytest.mark.parametrize("first_key", ["id", "object"])
def test_only_the_response_objects_id_and_response_id_fields_change(chunk: int, first_key: str) -> None:
    out = _relay(_stream("resp", first_key), chunk)
    events = [orjson.loads(payload) for _, payload in iter_events(out)]
    assert [e["type"] for e in events] == ["response.created", "response.output_item.added",
                                           "response.output_text.delta", "response.output_text.delta",
                                           "response.custom", "response.completed"]
    created, added, delta, quoting, custom, completed = events
    assert created["response"]["id"] == GATEWAY_ID and created["response"]["object"] == "response"
    assert completed["response"]["id"] == GATEWAY_ID and completed["response"]["object"] == "response"
    assert custom["response_id"] == GATEWAY_ID
    assert added["item"]["id"] == "resp" and completed["response"]["output"][0]["id"] == "resp"
    assert delta["item_id"] == "resp" and delta["delta"] == "resp"
    assert quoting["delta"] == 'resp "resp"'
    assert completed["response"]["metadata"] == {"note": "resp"}


def test_the_stream_grows_only_by_the_rewritten_ids() -> None:
    stream = _stream("resp")
    out = _relay(stream)
    assert len(out) - len(stream) == 3 * (len(GATEWAY_ID) - len("resp"))
