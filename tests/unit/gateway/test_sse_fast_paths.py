"""The relay's cheap paths give what the general ones gave, in the cases they are not made for.

The block's last events (the ``tail``) are found once per block and kept in step with the id
rewrite and the redaction instead of being searched for again; the id is searched without its
closing quote; an event's ``data`` and ``event`` lines are cut out with searches, not split.
"""

from __future__ import annotations

import random

import orjson
import pytest

from modelgate_gateway.http1.eventstream import event_data
from modelgate_gateway.redaction import redactor_for
from modelgate_gateway.streaming.sse import SseRelayState, iter_events
from modelgate_gateway.streaming.sseblocks import last_events

SECRET = "sk-upstream-secret-0123456789"


def _event(kind: str, **fields: object) -> bytes:
    return f"event: {kind}\ndata: ".encode() + orjson.dumps({"type": kind, **fields}) + b"\n\n"


def _whole_stream(rid: str, final: bytes) -> bytes:
    response = {"id": rid, "object": "response", "status": "in_progress", "output": []}
    deltas = b"".join(
        _event("response.output_text.delta", sequence_number=2 + i, item_id="msg_1", delta="x" * 80) for i in range(60)
    )
    return (
        _event("response.created", sequence_number=0, response=response)
        + _event("response.in_progress", sequence_number=1, response=response)
        + deltas
        + final
    )


@pytest.mark.parametrize("gateway_id", ["resp_G", "resp_" + "G" * 90])  # shorter and longer than the upstream's
def test_the_final_event_of_a_whole_stream_block_carries_the_gateway_id(gateway_id: str) -> None:
    rid = "resp_upstream_0001"
    done = {"id": rid, "object": "response", "status": "completed", "output": [], "usage": {"total_tokens": 3}}
    stream = _whole_stream(rid, _event("response.completed", sequence_number=99, response=done))
    assert len(stream) > 4096  # searched by its last events only
    state = SseRelayState(lambda upstream: gateway_id)
    out = state.feed(stream)
    assert out == stream.replace(rid.encode(), gateway_id.encode())
    assert state.terminal is not None
    assert state.terminal["id"] == gateway_id and state.terminal["usage"] == {"total_tokens": 3}


def test_a_failed_final_event_is_redacted_and_its_id_rewritten_in_one_block() -> None:
    rid = "resp_upstream_0001"
    error = {"code": "server_error", "message": f"upstream rejected Authorization: Bearer {SECRET}"}
    failed = {"id": rid, "object": "response", "status": "failed", "output": [], "error": error}
    stream = _whole_stream(rid, _event("response.failed", sequence_number=99, response=failed))
    state = SseRelayState(lambda upstream: "resp_" + "G" * 70, redactor_for([SECRET]))
    out = state.feed(stream)
    assert SECRET.encode() not in out and rid.encode() not in out
    assert state.terminal is not None
    assert state.terminal["id"] == "resp_" + "G" * 70
    assert state.terminal["error"]["message"] == "upstream rejected Authorization: Bearer [redacted]"


def test_an_id_that_only_starts_like_the_response_id_is_left_alone() -> None:
    rid = "resp_up1"
    response = {"id": rid, "object": "response", "status": "in_progress", "output": []}
    longer = {"id": rid + "0", "object": "response", "status": "completed", "output": []}
    stream = _event("response.created", sequence_number=0, response=response) + _event(
        "response.custom", sequence_number=1, response_id=rid + "0", response=longer
    )
    state = SseRelayState(lambda upstream: "resp_GW")
    events = [orjson.loads(payload) for _, payload in iter_events(state.feed(stream))]
    assert events[0]["response"]["id"] == "resp_GW"
    assert events[1]["response_id"] == "resp_up10" and events[1]["response"]["id"] == "resp_up10"


def test_an_escaped_id_is_rewritten_where_it_is_the_response_id() -> None:
    rid = 'resp_"odd"\\id'
    response = {"id": rid, "object": "response", "status": "in_progress", "output": []}
    stream = _event("response.created", sequence_number=0, response=response) + _event(
        "response.output_text.delta", sequence_number=1, item_id="msg_1", delta=rid
    )
    state = SseRelayState(lambda upstream: "resp_GW")
    events = [orjson.loads(payload) for _, payload in iter_events(state.feed(stream))]
    assert events[0]["response"]["id"] == "resp_GW" and events[1]["delta"] == rid


@pytest.mark.parametrize(
    ("event", "data"),
    [
        (b"data: one", b"one"),
        (b"data:one\n", b"one"),
        (b"event: x\ndata:  two spaces\nid: 7", b" two spaces"),
        (b"event: x\ndata: a\nretry: 5\ndata: b", b"a\nb"),
        (b"data: a\r\ndata: b\r\n", b"a\nb"),
        (b"event: x\n: no data", b""),
        (b": data: in a comment", b""),
        (b"xdata: not a field\ndata: yes", b"yes"),
    ],
)
def test_event_data_reads_every_layout(event: bytes, data: bytes) -> None:
    assert event_data(event) == data


def test_the_last_event_line_names_the_event() -> None:
    block = b'event: first\nevent: second\ndata: {}\n\ndata: {"type":"typed"}\n\nevent:bare\r\ndata: 1\n\n'
    assert [kind for kind, _ in iter_events(block)] == ["second", "typed", "bare"]


def _lines_data(event: bytes) -> bytes:
    """The SSE reading written out line by line: what the cut-out paths must agree with."""
    lines = event.replace(b"\r\n", b"\n").split(b"\n")
    return b"\n".join(line[5:].removeprefix(b" ") for line in lines if line.startswith(b"data:"))


def _lines_kind(raw: bytes) -> str:
    kinds = [line[6:].strip().decode("utf-8", "replace") for line in raw.split(b"\n") if line.startswith(b"event:")]
    return kinds[-1] if kinds else ""


def _pairs_tail(block: bytes, count: int) -> bytes:
    end = len(block) - 2
    for _ in range(count):
        end = block.rfind(b"\n\n", 0, end)
        if end < 0:
            return block
    return block[end + 2 :]


def test_the_cut_out_readings_agree_with_line_by_line_ones_on_any_bytes() -> None:
    pieces = [b"data:", b"data: ", b"event:", b"event: a ", b"\n", b"\n\n", b"\r\n", b"\r", b" ", b"x", b":", b"ata:"]
    rng = random.Random(11)
    for _ in range(20_000):
        text = b"".join(rng.choice(pieces) for _ in range(rng.randint(0, 9)))
        assert event_data(text) == _lines_data(text), text
        block = text + b"\n\n"
        for raw, (kind, payload) in zip([raw for raw in block.split(b"\n\n") if raw], iter_events(block), strict=True):
            assert payload == _lines_data(raw) and (kind == _lines_kind(raw) or not _lines_kind(raw)), raw
        for count in (1, 2, 3):
            assert last_events(block, count) == _pairs_tail(block, count), (block, count)
