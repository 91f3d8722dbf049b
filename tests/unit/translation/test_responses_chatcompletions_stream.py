"""Chat chunks -> Responses SSE: every frame parses as the SDK's event, in order, complete."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from openai import omit
from openai.lib.streaming.responses._responses import ResponseStreamState
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from fake_chat_upstream import ChatScript, ToolCallScript, build_chunks
from modelgate_gateway.observability.recording import Usage
from modelgate_gateway.upstream.translation.responses_chatcompletions import (
    ChatStreamTranslator,
    translate_request,
)

EVENTS: TypeAdapter[ResponseStreamEvent] = TypeAdapter(ResponseStreamEvent)
TOOL = {"type": "function", "name": "get_weather", "parameters": {"type": "object"}}


def parse_frames(data: bytes) -> list[Any]:
    """Split SSE bytes into typed SDK events, checking the frame format on the way."""
    assert data.endswith(b"\n\n")
    events = []
    for frame in data[:-2].split(b"\n\n"):
        event_line, data_line = frame.split(b"\n")
        assert event_line.startswith(b"event: ")
        assert data_line.startswith(b"data: {")
        payload = orjson.loads(data_line[len(b"data: ") :])
        assert event_line[len(b"event: ") :].decode() == payload["type"]
        events.append(EVENTS.validate_python(payload))
    return events


def run(script: ChatScript, request: dict[str, Any]) -> tuple[ChatStreamTranslator, list[Any]]:
    chat_body = translate_request({**request, "stream": True}, "up")
    translator = ChatStreamTranslator(
        response_id="resp_s", model="public", created_at=1_700_000_000, request=request
    )
    out = translator.start()
    for chunk in build_chunks(script, chat_body):
        out += translator.feed(chunk)
    out += translator.finish()
    return translator, parse_frames(out)


def accumulate(events: list[Any]) -> Any:
    """Feed events through the SDK's own ``responses.stream()`` state machine."""
    state: ResponseStreamState[object] = ResponseStreamState(input_tools=omit, text_format=omit)
    for event in events:
        state.handle_event(event)
    return state._completed_response


def assert_well_formed(events: list[Any]) -> None:
    numbers = [e.sequence_number for e in events]
    assert numbers == list(range(len(events)))
    assert [e.type for e in events[:2]] == ["response.created", "response.in_progress"]
    assert events[-1].type in ("response.completed", "response.incomplete")
    assert all(e.response.id == "resp_s" for e in events if hasattr(e, "response"))


def test_text_stream_full_event_sequence() -> None:
    translator, events = run(
        ChatScript(text=["Hel", "lo", " world"]), {"model": "public", "input": "hi"}
    )
    assert_well_formed(events)
    assert [e.type for e in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    done = next(e for e in events if e.type == "response.output_text.done")
    assert deltas == done.text == translator.output_text == "Hello world"
    item_ids = {e.item_id for e in events if hasattr(e, "item_id")}
    assert item_ids == {events[2].item.id}
    assert events[2].item.id.startswith("msg_")
    final = events[-1].response
    assert final.output_text == "Hello world"
    assert final.status == "completed"
    assert Response.model_validate(translator.response).output_text == "Hello world"
    assert accumulate(events).output_text == "Hello world"


def test_two_parallel_tool_calls_split_across_chunks() -> None:
    script = ChatScript(
        text=["Checking", "."],
        tool_calls=[
            ToolCallScript("get_weather", ['{"ci', 'ty": "Pa', 'ris"}'], "call_p"),
            ToolCallScript("get_weather", ['{"city"', ': "Rome"}'], "call_r"),
        ],
    )
    _, events = run(script, {"model": "public", "input": "hi", "tools": [TOOL]})
    assert_well_formed(events)
    added = [e for e in events if e.type == "response.output_item.added"]
    assert [e.item.type for e in added] == ["message", "function_call", "function_call"]
    assert [e.output_index for e in added] == [0, 1, 2]
    # the message is finished before the first call starts, as Responses streams do
    types = [e.type for e in events]
    assert types.index("response.output_item.done") < types.index(
        "response.function_call_arguments.delta"
    )
    for index, (call_id, arguments) in enumerate(
        [("call_p", '{"city": "Paris"}'), ("call_r", '{"city": "Rome"}')], 1
    ):
        item = added[index].item
        assert item.call_id == call_id and item.name == "get_weather" and item.id.startswith("fc_")
        deltas = [
            e
            for e in events
            if e.type == "response.function_call_arguments.delta" and e.output_index == index
        ]
        assert len(deltas) > 1 and {d.item_id for d in deltas} == {item.id}
        assert "".join(d.delta for d in deltas) == arguments
        done = next(
            e
            for e in events
            if e.type == "response.function_call_arguments.done" and e.output_index == index
        )
        assert done.arguments == arguments
    final = accumulate(events)
    calls = [item for item in final.output if item.type == "function_call"]
    assert [(c.call_id, c.arguments) for c in calls] == [
        ("call_p", '{"city": "Paris"}'),
        ("call_r", '{"city": "Rome"}'),
    ]
    assert final.output_text == "Checking."


def test_usage_only_in_last_chunk_with_cached_and_reasoning_details() -> None:
    usage = {
        "prompt_tokens": 2006,
        "completion_tokens": 300,
        "total_tokens": 2306,
        "prompt_tokens_details": {"cached_tokens": 1920, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 256, "audio_tokens": 0},
    }
    translator, events = run(ChatScript(usage=usage), {"model": "public", "input": "hi"})
    assert all(
        getattr(e, "response", None) is None or e.response.usage is None for e in events[:-1]
    )
    final_usage = events[-1].response.usage
    assert final_usage.input_tokens == 2006
    assert final_usage.input_tokens_details.cached_tokens == 1920
    assert final_usage.output_tokens == 300
    assert final_usage.output_tokens_details.reasoning_tokens == 256
    assert final_usage.total_tokens == 2306
    assert translator.usage == Usage(
        input_tokens=2006, cached_input_tokens=1920, output_tokens=300, reasoning_tokens=256
    )


def test_length_finish_ends_with_response_incomplete() -> None:
    translator, events = run(
        ChatScript(text=["trunc"], finish_reason="length"), {"model": "public", "input": "hi"}
    )
    assert_well_formed(events)
    last = events[-1]
    assert last.type == "response.incomplete"
    assert last.response.status == "incomplete"
    assert last.response.incomplete_details.reason == "max_output_tokens"
    assert last.response.output[0].status == "incomplete"
    assert translator.response["status"] == "incomplete"


def test_logprobs_flow_into_deltas_and_final_part() -> None:
    request = {"model": "public", "input": "hi", "include": ["message.output_text.logprobs"]}
    _, events = run(ChatScript(text=["a", "b"]), request)
    deltas = [e for e in events if e.type == "response.output_text.delta"]
    assert [d.logprobs[0].token for d in deltas] == ["a", "b"]
    part = events[-1].response.output[0].content[0]
    assert [lp.token for lp in part.logprobs] == ["a", "b"]


def test_tool_name_arriving_after_id_still_announces_call_once() -> None:
    translator = ChatStreamTranslator(
        response_id="resp_s", model="m", created_at=1, request={"input": "x"}
    )
    out = translator.start()
    chunk = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "up"}
    deltas: list[dict[str, Any]] = [
        {
            "tool_calls": [
                {"index": 0, "id": "call_x", "type": "function", "function": {"arguments": '{"a"'}}
            ]
        },
        {"tool_calls": [{"index": 0, "function": {"name": "f", "arguments": ":1"}}]},
        {"tool_calls": [{"index": 0, "function": {"arguments": "}"}}]},
    ]
    for delta in deltas:
        out += translator.feed(
            {**chunk, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
        )
    out += translator.feed(
        {**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}
    )
    events = parse_frames(out + translator.finish())
    added = [e for e in events if e.type == "response.output_item.added"]
    assert len(added) == 1 and added[0].item.name == "f" and added[0].item.call_id == "call_x"
    args = "".join(e.delta for e in events if e.type == "response.function_call_arguments.delta")
    assert args == '{"a":1}'
    assert accumulate(events).output[0].arguments == '{"a":1}'


def test_frames_are_produced_as_chunks_arrive() -> None:
    translator = ChatStreamTranslator(
        response_id="resp_s", model="m", created_at=1, request={"input": "x"}
    )
    translator.start()
    chunks = build_chunks(ChatScript(text=["one", "two"]), {"model": "up"})
    assert translator.feed(chunks[0]) == b""  # role-only chunk: nothing to say yet
    first = parse_frames(translator.feed(chunks[1]))
    assert [e.type for e in first] == [
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
    ]
    assert [e.type for e in parse_frames(translator.feed(chunks[2]))] == [
        "response.output_text.delta"
    ]


def test_fail_mid_stream_ends_with_response_failed_and_partial_output() -> None:
    translator = ChatStreamTranslator(
        response_id="resp_s", model="m", created_at=1, request={"input": "x"}
    )
    out = translator.start()
    for chunk in build_chunks(ChatScript(text=["par", "tial"]), {"model": "up"})[:3]:
        out += translator.feed(chunk)
    out += translator.fail("upstream connection lost", "server_error")
    events = parse_frames(out)
    assert [e.sequence_number for e in events] == list(range(len(events)))
    last = events[-1]
    assert last.type == "response.failed"
    assert last.response.status == "failed"
    assert last.response.error.code == "server_error"
    assert last.response.error.message == "upstream connection lost"
    assert last.response.output_text == "partial"
    assert translator.closed
    with pytest.raises(RuntimeError):
        translator.feed(build_chunks(ChatScript(), {"model": "up"})[1])


def test_error_payload_in_stream_fails_the_response() -> None:
    translator = ChatStreamTranslator(
        response_id="resp_s", model="m", created_at=1, request={"input": "x"}
    )
    translator.start()
    events = parse_frames(translator.feed({"error": {"message": "model overloaded", "code": 503}}))
    assert [e.type for e in events] == ["response.failed"]
    assert events[0].response.error.code == "server_error"
    assert translator.closed


def test_finish_reason_is_exposed_for_truncated_upstream_streams() -> None:
    translator = ChatStreamTranslator(
        response_id="resp_s", model="m", created_at=1, request={"input": "x"}
    )
    translator.start()
    chunks = build_chunks(ChatScript(text=["a"]), {"model": "up"})
    translator.feed(chunks[1])
    assert translator.finish_reason is None
    translator.feed(chunks[2])
    assert translator.finish_reason == "stop"
