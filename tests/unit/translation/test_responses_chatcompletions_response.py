"""Non-streaming chat.completion -> Responses object, usage mapping and stored conversation."""

from __future__ import annotations

from typing import Any

from openai.types.responses import Response, ResponseOutputMessage, ResponseOutputText

from fake_chat_upstream import ChatScript, ToolCallScript, build_completion
from modelgate_gateway.observability.recording import Usage
from modelgate_gateway.observability.usage import usage_from_mapping
from modelgate_gateway.upstream.translation.responses_chatcompletions import (
    conversation_messages,
    map_usage,
    stored_input_items,
    translate_request,
    translate_response,
)

USAGE = {
    "prompt_tokens": 120,
    "completion_tokens": 40,
    "total_tokens": 160,
    "prompt_tokens_details": {"cached_tokens": 100},
    "completion_tokens_details": {"reasoning_tokens": 16},
}


def respond(
    script: ChatScript, request: dict[str, Any], history: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    chat_body = translate_request(request, "up", history)
    return translate_response(
        build_completion(script, chat_body),
        response_id="resp_abc",
        model="public-model",
        created_at=1_700_000_000,
        request=request,
        completed_at=1_700_000_003,
    )


def test_text_reply_is_a_completed_response_with_mapped_usage() -> None:
    request = {
        "model": "public-model",
        "input": "hi",
        "instructions": "Be nice.",
        "temperature": 0.3,
    }
    raw = respond(ChatScript(text=["Hel", "lo"], usage=USAGE), request)
    response = Response.model_validate(raw)
    assert response.id == "resp_abc"
    assert response.status == "completed"
    assert response.model == "public-model"
    assert response.output_text == "Hello"
    assert response.instructions == "Be nice."
    assert response.temperature == 0.3
    assert response.completed_at == 1_700_000_003
    assert response.output[0].type == "message"
    assert response.output[0].id.startswith("msg_")
    assert response.usage is not None
    assert response.usage.input_tokens == 120
    assert response.usage.input_tokens_details.cached_tokens == 100
    assert response.usage.output_tokens == 40
    assert response.usage.output_tokens_details.reasoning_tokens == 16
    assert response.usage.total_tokens == 160


def test_tool_calls_become_function_call_items_echoing_tools() -> None:
    tool = {"type": "function", "name": "lookup", "parameters": {"type": "object"}}
    script = ChatScript(
        text=[],
        tool_calls=[
            ToolCallScript("lookup", ['{"q":', '"a"}'], "call_1"),
            ToolCallScript("lookup", ["{}"], "call_2"),
        ],
    )
    raw = respond(script, {"model": "m", "input": "x", "tools": [tool], "tool_choice": "required"})
    response = Response.model_validate(raw)
    calls = [item for item in response.output if item.type == "function_call"]
    assert [(c.call_id, c.name, c.arguments) for c in calls] == [
        ("call_1", "lookup", '{"q":"a"}'),
        ("call_2", "lookup", "{}"),
    ]
    assert all(c.id is not None and c.id.startswith("fc_") for c in calls)
    assert [item.type for item in response.output] == ["function_call", "function_call"]
    assert response.tool_choice == "required"
    assert raw["tools"] == [tool]


def test_length_finish_is_incomplete_max_output_tokens() -> None:
    raw = respond(
        ChatScript(text=["cut"], finish_reason="length"),
        {"model": "m", "input": "x", "max_output_tokens": 1},
    )
    response = Response.model_validate(raw)
    assert response.status == "incomplete"
    assert response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"
    message = response.output[0]
    assert isinstance(message, ResponseOutputMessage)
    assert message.status == "incomplete"
    assert response.max_output_tokens == 1
    assert response.completed_at is None


def test_refusal_becomes_refusal_part() -> None:
    raw = respond(ChatScript(text=[], refusal=["I can't"]), {"model": "m", "input": "x"})
    response = Response.model_validate(raw)
    message = response.output[0]
    assert isinstance(message, ResponseOutputMessage)
    assert message.content[0].type == "refusal"
    assert response.output_text == ""


def test_logprobs_are_carried_into_output_text() -> None:
    request = {"model": "m", "input": "x", "include": ["message.output_text.logprobs"]}
    raw = respond(ChatScript(text=["a", "b"]), request)
    response = Response.model_validate(raw)
    message = response.output[0]
    assert isinstance(message, ResponseOutputMessage)
    part = message.content[0]
    assert isinstance(part, ResponseOutputText)
    assert [lp.token for lp in part.logprobs or []] == ["a", "b"]


def test_missing_usage_maps_to_none() -> None:
    raw = respond(ChatScript(usage=None), {"model": "m", "input": "x"})
    assert raw["usage"] is None
    assert usage_from_mapping(None) is None


def test_usage_record_feeds_metrics() -> None:
    assert usage_from_mapping(USAGE) == Usage(
        input_tokens=120, cached_input_tokens=100, output_tokens=40, reasoning_tokens=16
    )
    assert map_usage({"prompt_tokens": 3, "completion_tokens": 4}) == {
        "input_tokens": 3,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": 4,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 7,
    }


def test_conversation_messages_reproduce_the_turn_for_the_next_request() -> None:
    request = {"model": "m", "instructions": "I", "input": "weather?"}
    script = ChatScript(text=["Checking."], tool_calls=[ToolCallScript("w", ["{}"], "call_9")])
    response = respond(script, request)
    messages = conversation_messages(request, None, response)
    assert messages == [
        {"role": "user", "content": "weather?"},
        {
            "role": "assistant",
            "content": "Checking.",
            "tool_calls": [
                {"id": "call_9", "type": "function", "function": {"name": "w", "arguments": "{}"}}
            ],
        },
    ]
    follow_up = {
        "model": "m",
        "previous_response_id": "resp_abc",
        "input": [{"type": "function_call_output", "call_id": "call_9", "output": "sunny"}],
    }
    assert translate_request(follow_up, "up", history=messages)["messages"] == [
        *messages,
        {"role": "tool", "tool_call_id": "call_9", "content": "sunny"},
    ]
    second = conversation_messages(
        follow_up, messages, respond(ChatScript(text=["Sunny."]), follow_up, messages)
    )
    assert second[:2] == messages
    assert second[-1] == {"role": "assistant", "content": "Sunny."}


def test_stored_input_items_have_types_and_ids() -> None:
    items = stored_input_items({"input": "hello"})
    assert items[0]["type"] == "message"
    assert items[0]["content"] == [{"type": "input_text", "text": "hello"}]
    assert items[0]["id"].startswith("msg_")
    call = {"type": "function_call_output", "call_id": "c", "output": "x", "id": "fco_1"}
    assert stored_input_items({"input": [call]}) == [call]
