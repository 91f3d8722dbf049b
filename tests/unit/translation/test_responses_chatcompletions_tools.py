"""Responses tools -> chat tools: namespaces flattened and mapped back, unsupported tools refused or dropped."""

from __future__ import annotations

import pytest

from modelgate_gateway.upstream.translation.responses_chatcompletions import (
    UntranslatableError,
    translate_request,
    translate_response,
)
from modelgate_gateway.upstream.translation.responses_chatcompletions_tools import chat_tools, namespaced_names

FN = {"type": "function", "name": "lookup", "parameters": {"type": "object", "properties": {}}}
NS = {"type": "namespace", "name": "crm", "description": "CRM tools.", "tools": [FN]}


def test_namespace_tools_are_flattened_with_the_group_description() -> None:
    (tool,) = chat_tools([NS])
    assert tool["function"]["name"] == "crm__lookup"
    assert tool["function"]["description"] == "CRM tools."
    assert namespaced_names([NS]) == {"crm__lookup": ("crm", "lookup")}


def test_a_flattened_name_may_not_collide_with_a_function() -> None:
    with pytest.raises(UntranslatableError) as caught:
        chat_tools([{**FN, "name": "crm__lookup"}, NS])
    assert caught.value.param == "tools[1].tools[0].name"


@pytest.mark.parametrize("tools, param", [
    ([{"type": "web_search"}], "tools[0].type"),
    ([{**NS, "tools": [{"type": "custom", "name": "patch"}]}], "tools[0].tools[0].type"),
])
def test_unsupported_tools_are_refused_or_dropped(tools: list[dict], param: str) -> None:
    with pytest.raises(UntranslatableError) as caught:
        chat_tools(tools)
    assert caught.value.param == param
    dropped: list[str] = []
    assert chat_tools(tools, drop_unsupported=True, dropped=dropped) == []
    assert len(dropped) == 1


def test_tool_choice_auto_is_left_out_when_every_tool_was_dropped() -> None:
    body = {"input": "hi", "tools": [{"type": "web_search"}], "tool_choice": "auto", "parallel_tool_calls": True}
    chat = translate_request(body, "m", drop_unsupported_tools=True)
    assert "tools" not in chat and "tool_choice" not in chat and "parallel_tool_calls" not in chat


def test_client_metadata_is_dropped_and_named() -> None:
    dropped: list[str] = []
    chat = translate_request({"input": "hi", "client_metadata": {"a": "b"}}, "m", dropped=dropped)
    assert "client_metadata" not in chat and dropped == ["client_metadata"]


def test_replayed_namespaced_calls_are_flattened_and_answers_mapped_back() -> None:
    call = {"type": "function_call", "call_id": "c1", "name": "lookup", "namespace": "crm", "arguments": "{}"}
    chat = translate_request({"input": [call, {"type": "function_call_output", "call_id": "c1", "output": "ok"}],
                              "tools": [NS]}, "m")
    assert chat["messages"][0]["tool_calls"][0]["function"]["name"] == "crm__lookup"
    completion = {"choices": [{"finish_reason": "tool_calls", "message": {"role": "assistant", "tool_calls": [
        {"id": "c2", "type": "function", "function": {"name": "crm__lookup", "arguments": "{}"}}]}}]}
    response = translate_response(completion, response_id="resp_1", model="m", created_at=0, request={"tools": [NS]})
    assert (response["output"][0]["namespace"], response["output"][0]["name"]) == ("crm", "lookup")


def test_openai_only_fields_go_to_openai_and_are_dropped_for_other_servers() -> None:
    body = {"input": "hi", "prompt_cache_key": "k", "safety_identifier": "s", "temperature": 0.5}
    assert translate_request(body, "m")["prompt_cache_key"] == "k"
    dropped: list[str] = []
    chat = translate_request(body, "m", openai_fields=False, dropped=dropped)
    assert "prompt_cache_key" not in chat and "safety_identifier" not in chat and chat["temperature"] == 0.5
    assert sorted(dropped) == ["prompt_cache_key", "safety_identifier"]
