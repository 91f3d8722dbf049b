"""Responses create body -> Chat Completions body: every supported field, every refusal."""

from __future__ import annotations

from typing import Any

import pytest
from openai.types.chat.completion_create_params import CompletionCreateParamsStreaming
from pydantic import TypeAdapter

from modelgate_gateway.upstream.translation.responses_chatcompletions import (
    UntranslatableError,
    translate_request,
)

FUNCTION_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    "strict": True,
}
CHAT_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        "strict": True,
    },
}


def chat(**body: Any) -> dict[str, Any]:
    return translate_request({"model": "public", **body}, "upstream-model")


def test_string_input_becomes_one_user_message_and_model_is_replaced() -> None:
    assert chat(input="hi") == {
        "model": "upstream-model",
        "messages": [{"role": "user", "content": "hi"}],
    }


def test_instructions_lead_as_system_message() -> None:
    assert chat(instructions="Be brief.", input="hi")["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hi"},
    ]


def test_message_items_with_text_and_image_parts() -> None:
    body = chat(
        input=[
            {"role": "developer", "content": "Rules."},
            {"type": "message", "role": "system", "content": [{"type": "input_text", "text": "S"}]},
            {
                "type": "message",
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "What is this?"},
                    {
                        "type": "input_image",
                        "image_url": "data:image/png;base64,AAA",
                        "detail": "low",
                    },
                ],
            },
            {"role": "user", "content": [{"type": "input_text", "text": "only text"}]},
            {
                "role": "assistant",
                "content": [{"type": "output_text", "text": "An A.", "annotations": []}],
            },
        ]
    )
    assert body["messages"] == [
        {"role": "system", "content": "Rules."},
        {"role": "system", "content": "S"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is this?"},
                {
                    "type": "image_url",
                    "image_url": {"url": "data:image/png;base64,AAA", "detail": "low"},
                },
            ],
        },
        {"role": "user", "content": "only text"},
        {"role": "assistant", "content": "An A."},
    ]


def test_function_calls_and_outputs_become_tool_calls_and_tool_messages() -> None:
    body = chat(
        input=[
            {"role": "user", "content": "weather in Paris and Rome?"},
            {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "xyz"},
            {
                "type": "function_call",
                "call_id": "call_a",
                "name": "get_weather",
                "arguments": '{"city":"Paris"}',
            },
            {
                "type": "function_call",
                "call_id": "call_b",
                "name": "get_weather",
                "arguments": '{"city":"Rome"}',
            },
            {"type": "function_call_output", "call_id": "call_a", "output": "18C"},
            {
                "type": "function_call_output",
                "call_id": "call_b",
                "output": [{"type": "input_text", "text": "21C"}],
            },
        ]
    )
    assert body["messages"] == [
        {"role": "user", "content": "weather in Paris and Rome?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_a",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                },
                {
                    "id": "call_b",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "call_a", "content": "18C"},
        {"role": "tool", "tool_call_id": "call_b", "content": [{"type": "text", "text": "21C"}]},
    ]


def test_assistant_text_followed_by_call_is_one_assistant_turn() -> None:
    body = chat(
        input=[
            {"role": "assistant", "content": "Let me check."},
            {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
        ]
    )
    assert body["messages"] == [
        {
            "role": "assistant",
            "content": "Let me check.",
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
            ],
        }
    ]


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("temperature", 0.2, {"temperature": 0.2}),
        ("top_p", 0.9, {"top_p": 0.9}),
        ("max_output_tokens", 256, {"max_completion_tokens": 256}),
        ("user", "u-1", {"user": "u-1"}),
        ("safety_identifier", "hash-1", {"safety_identifier": "hash-1"}),
        ("prompt_cache_key", "k", {"prompt_cache_key": "k"}),
        ("service_tier", "flex", {"service_tier": "flex"}),
        ("reasoning", {"effort": "low", "summary": "auto"}, {"reasoning_effort": "low"}),
        ("text", {"format": {"type": "json_object"}}, {"response_format": {"type": "json_object"}}),
        ("text", {"format": {"type": "text"}, "verbosity": "low"}, {"verbosity": "low"}),
        ("stream", True, {"stream": True, "stream_options": {"include_usage": True}}),
        ("stream", False, {}),
        ("include", ["message.output_text.logprobs"], {"logprobs": True}),
        ("include", ["reasoning.encrypted_content"], {}),
        ("top_logprobs", 3, {"logprobs": True, "top_logprobs": 3}),
        ("store", False, {}),
        ("metadata", {"team": "a"}, {}),
        ("truncation", "disabled", {}),
        ("background", False, {}),
        ("parallel_tool_calls", False, {}),
        ("tool_choice", "auto", {}),
        ("stream_options", {"include_obfuscation": False}, {}),
        ("max_tool_calls", 3, {}),
        ("temperature", None, {}),
    ],
)
def test_scalar_fields_map_to_chat_fields(field: str, value: Any, expected: dict[str, Any]) -> None:
    body = chat(input="hi", **{field: value})
    extra = {k: v for k, v in body.items() if k not in ("model", "messages")}
    assert extra == expected


def test_json_schema_format_becomes_response_format() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}
    body = chat(
        input="hi",
        text={"format": {"type": "json_schema", "name": "thing", "schema": schema, "strict": True}},
    )
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "thing", "schema": schema, "strict": True},
    }


def test_function_tools_tool_choice_and_parallel_calls() -> None:
    body = chat(
        input="hi",
        tools=[FUNCTION_TOOL],
        tool_choice={"type": "function", "name": "get_weather"},
        parallel_tool_calls=False,
    )
    assert body["tools"] == [CHAT_TOOL]
    assert body["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert body["parallel_tool_calls"] is False


@pytest.mark.parametrize("choice", ["none", "auto", "required"])
def test_string_tool_choice_passes_with_tools(choice: str) -> None:
    assert chat(input="hi", tools=[FUNCTION_TOOL], tool_choice=choice)["tool_choice"] == choice


def test_allowed_tools_choice_uses_chat_allowed_tools_shape() -> None:
    body = chat(
        input="hi",
        tools=[FUNCTION_TOOL],
        tool_choice={
            "type": "allowed_tools",
            "mode": "required",
            "tools": [{"type": "function", "name": "get_weather"}],
        },
    )
    assert body["tool_choice"] == {
        "type": "allowed_tools",
        "allowed_tools": {
            "mode": "required",
            "tools": [{"type": "function", "function": {"name": "get_weather"}}],
        },
    }


def test_history_sits_between_instructions_and_new_input() -> None:
    history = [{"role": "user", "content": "one"}, {"role": "assistant", "content": "two"}]
    body = translate_request(
        {"model": "m", "instructions": "I", "previous_response_id": "resp_1", "input": "three"},
        "up",
        history=history,
    )
    assert body["messages"] == [
        {"role": "system", "content": "I"},
        {"role": "user", "content": "one"},
        {"role": "assistant", "content": "two"},
        {"role": "user", "content": "three"},
    ]


def test_full_streaming_body_validates_as_chat_create_params() -> None:
    body = chat(
        instructions="I",
        input=[{"role": "user", "content": [{"type": "input_text", "text": "hi"}]}],
        tools=[FUNCTION_TOOL],
        tool_choice="required",
        temperature=0.1,
        max_output_tokens=10,
        reasoning={"effort": "high"},
        text={"format": {"type": "json_object"}},
        stream=True,
        user="u",
    )
    known = (
        CompletionCreateParamsStreaming.__required_keys__
        | CompletionCreateParamsStreaming.__optional_keys__
    )
    assert set(body) <= known
    TypeAdapter(CompletionCreateParamsStreaming).validate_python(body)  # shapes of every value


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"tools": [{"type": "web_search"}]}, "tools[0].type"),
        (
            {"tools": [FUNCTION_TOOL, {"type": "file_search", "vector_store_ids": ["v"]}]},
            "tools[1].type",
        ),
        ({"tools": [{"type": "code_interpreter", "container": {"type": "auto"}}]}, "tools[0].type"),
        ({"tools": [{"type": "computer_use_preview"}]}, "tools[0].type"),
        ({"tools": [{"type": "mcp", "server_label": "x"}]}, "tools[0].type"),
        ({"tools": [{"type": "custom", "name": "x"}]}, "tools[0].type"),
        ({"tools": [{**FUNCTION_TOOL, "defer_loading": True}]}, "tools[0].defer_loading"),
        ({"tool_choice": {"type": "web_search_preview"}, "tools": [FUNCTION_TOOL]}, "tool_choice"),
        ({"previous_response_id": "resp_1"}, "previous_response_id"),
        ({"background": True}, "background"),
        ({"truncation": "auto"}, "truncation"),
        ({"prompt": {"id": "pmpt_1"}}, "prompt"),
        ({"context_management": [{"type": "compaction"}]}, "context_management"),
        ({"text": {"format": {"type": "grammar"}}}, "text.format.type"),
        ({"reasoning": {"mode": "pro"}}, "reasoning.mode"),
        ({"include": ["nonsense"]}, "include[0]"),
        ({"frobnicate": 1}, "frobnicate"),
        ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "input[0].type"),
        ({"input": [{"type": "web_search_call", "id": "ws_1"}]}, "input[0].type"),
        (
            {
                "input": [
                    {"role": "user", "content": [{"type": "input_image", "file_id": "file_1"}]}
                ]
            },
            "input[0].content[0].file_id",
        ),
        (
            {
                "input": [
                    {"role": "user", "content": [{"type": "input_file", "file_url": "https://x"}]}
                ]
            },
            "input[0].content[0].file_url",
        ),
        (
            {
                "input": [
                    {
                        "type": "function_call_output",
                        "call_id": "c",
                        "output": [{"type": "input_image"}],
                    }
                ]
            },
            "input[0].output[0].type",
        ),
        ({"input": [{"role": "critic", "content": "x"}]}, "input[0].role"),
        ({"input": 42}, "input"),
    ],
)
def test_untranslatable_fields_name_the_field(body: dict[str, Any], param: str) -> None:
    with pytest.raises(UntranslatableError) as caught:
        translate_request({"model": "m", "input": "hi", **body}, "up")
    assert caught.value.param == param
    assert caught.value.message


def test_missing_input_is_refused() -> None:
    with pytest.raises(UntranslatableError) as caught:
        translate_request({"model": "m", "instructions": "I"}, "up")
    assert caught.value.param == "input"
