"""The SSE relay state: same bytes out whatever the chunking, ids rewritten, usage found."""

from __future__ import annotations

import orjson
import pytest

from modelgate_gateway.streaming.sse import SseRelayState, iter_events


def _event(kind: str, **fields) -> bytes:
    return f"event: {kind}\ndata: ".encode() + orjson.dumps({"type": kind, **fields}) + b"\n\n"


RESPONSE = {"id": "resp_up1", "object": "response", "status": "in_progress", "output": []}
STREAM = (
    _event("response.created", sequence_number=0, response=RESPONSE)
    + _event("response.in_progress", sequence_number=1, response=RESPONSE)
    + _event("response.output_text.delta", sequence_number=2, item_id="msg_1", delta="Hé")
    + _event("response.output_text.delta", sequence_number=3, item_id="msg_1", delta="llo")
    + _event("response.completed", sequence_number=4,
             response={**RESPONSE, "status": "completed", "usage": {"input_tokens": 3, "output_tokens": 2}})
)
EXPECTED = STREAM.replace(b"resp_up1", b"resp_GATEWAY")


def _relay(chunks: list[bytes]) -> tuple[bytes, SseRelayState]:
    state = SseRelayState(lambda upstream: "resp_GATEWAY")
    out = b"".join(state.feed(chunk) for chunk in chunks)
    return out, state


@pytest.mark.parametrize("cut", range(1, len(STREAM)))
def test_every_split_point_gives_the_same_output(cut: int) -> None:
    out, state = _relay([STREAM[:cut], STREAM[cut:]])
    assert out == EXPECTED
    assert state.terminal is not None and state.terminal["usage"]["output_tokens"] == 2
    assert state.first_delta_seen


def test_byte_by_byte_feeding_and_crlf_framing() -> None:
    out, state = _relay([bytes([b]) for b in STREAM.replace(b"\n", b"\r\n")])
    assert out == EXPECTED
    assert state.pending == b""


def test_failure_event_continues_the_sequence_with_the_gateway_id() -> None:
    partial = STREAM.split(b"event: response.completed")[0]
    _, state = _relay([partial])
    event = state.failure_event("upstream dropped")
    kind, payload = next(iter_events(event))
    data = orjson.loads(payload)
    assert kind == "response.failed" and data["sequence_number"] == 4
    assert data["response"]["id"] == "resp_GATEWAY" and data["response"]["status"] == "failed"


def test_events_without_event_lines_are_understood() -> None:
    plain = b"".join(b"data: " + line.split(b"data: ", 1)[1] for line in STREAM.split(b"event: ")[1:])
    _, state = _relay([plain])
    assert state.gateway_id == b"resp_GATEWAY" and state.terminal is not None


def test_no_first_delta_before_output() -> None:
    head = STREAM.split(b"event: response.output_text.delta")[0]
    _, state = _relay([head])
    assert not state.first_delta_seen


def test_an_event_that_never_ends_is_refused_instead_of_buffered_forever() -> None:
    from modelgate_gateway.streaming.sse import SseOverflow

    state = SseRelayState(lambda upstream: "resp_GATEWAY")
    state.feed(b"data: " + b"x" * 1024)
    with pytest.raises(SseOverflow):
        for _ in range(9 * 1024):  # 9 MiB in 1 KiB chunks, past the 8 MiB cap
            state.feed(b"x" * 1024)


@pytest.mark.parametrize("after", [b"", b"data: [DONE]\n\n", b": keep-alive\n\n" + b"data: [DONE]\n\n"])
def test_final_event_found_in_a_block_holding_the_whole_stream(after: bytes) -> None:
    """A large block's last events only are searched for the final one (a small block is searched
    whole); what servers send after the final event still fits."""
    head, final = STREAM.split(b"event: response.completed")
    deltas = b"".join(_event("response.output_text.delta", sequence_number=4, item_id="msg_1", delta="x" * 80)
                      for _ in range(60))
    stream = head + deltas + b"event: response.completed" + final + after
    assert len(stream) > 4096
    out, state = _relay([stream])
    assert out == stream.replace(b"resp_up1", b"resp_GATEWAY")
    assert state.terminal is not None and state.terminal["status"] == "completed"


def test_a_delta_quoting_lifecycle_or_final_event_names_is_not_taken_for_them() -> None:
    quoting = _event("response.output_text.delta", sequence_number=2, item_id="msg_1",
                     delta="response.completed response.created")
    head, tail = STREAM.split(b"event: response.output_text.delta", 1)
    out, state = _relay([head + quoting + b"event: response.output_text.delta" + tail.split(b"event: response.completed")[0]])
    assert state.gateway_id == b"resp_GATEWAY" and b"resp_up1" not in out
    assert state.terminal is None


def test_previous_response_and_conversation_ids_are_rewritten_everywhere_including_the_failure_event() -> None:
    chained = {**RESPONSE, "previous_response_id": "resp_up0", "conversation": {"id": "conv_up"}}
    stream = (_event("response.created", sequence_number=0, response=chained)
              + _event("response.output_text.delta", sequence_number=1, item_id="msg_1", delta="Hi"))
    state = SseRelayState(lambda upstream: "resp_GW" + upstream[-1], conversation=(b"conv_up", b"conv_GW"))
    out = state.feed(stream)
    assert b"_up" not in out
    created = orjson.loads(next(iter_events(out))[1])["response"]
    assert created["previous_response_id"] == "resp_GW0" and created["conversation"] == {"id": "conv_GW"}
    failed = orjson.loads(next(iter_events(state.failure_event("dropped")))[1])["response"]
    assert failed["previous_response_id"] == "resp_GW0" and failed["conversation"] == {"id": "conv_GW"}


def test_a_conversation_given_as_a_string_is_rewritten_too() -> None:
    chained = {**RESPONSE, "conversation": "conv_up"}
    stream = (_event("response.created", sequence_number=0, response=chained)
              + _event("response.output_text.delta", sequence_number=1, item_id="msg_1", delta="conv_up"))
    state = SseRelayState(lambda upstream: "resp_GW", conversation=(b"conv_up", b"conv_GW"))
    out = state.feed(stream)
    events = [orjson.loads(payload) for _, payload in iter_events(out)]
    assert events[0]["response"]["conversation"] == "conv_GW"
    assert events[1]["delta"] == "conv_up"  # the same text elsewhere is left alone
    failed = orjson.loads(next(iter_events(state.failure_event("dropped")))[1])["response"]
    assert failed["conversation"] == "conv_GW"
