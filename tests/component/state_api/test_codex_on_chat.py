"""A Codex-shaped tool loop on a chat-completions deployment (issue 12 bug 3) and on a Responses one."""

from __future__ import annotations

import logging
from typing import Any

import openai
import orjson
import pytest

from codex_request import NAMESPACE, NAMESPACED_TOOL, codex_body, tool_round, user_turn
from fake_chat_upstream import ChatScript, FakeChatUpstream, ToolCallScript
from fake_responses_upstream import FakeResponsesUpstream
from gateway_harness import GatewayHarness, config_doc, deployment

FLAT = f"{NAMESPACE}__{NAMESPACED_TOOL}"


# The gateway notes what a chat deployment leaves out once per process and deployment (at INFO,
# then DEBUG): a name no other test module uses keeps the first test's note its own, in any order.
CHAT_DEPLOYMENT = "codex-on-chat"


def _chat_doc(chat: FakeChatUpstream, unsupported_tools: str) -> dict[str, Any]:
    dep = deployment(
        CHAT_DEPLOYMENT,
        chat.base_url,
        api="chat_completions",
        provider="vllm",
        translation={"unsupportedTools": unsupported_tools},
    )
    return config_doc([dep], [{"name": "codex-model", "targets": [{"deployment": CHAT_DEPLOYMENT}]}])


async def _turn(client: openai.AsyncOpenAI, body: dict[str, Any]) -> dict[str, Any]:
    """One streamed turn sent as Codex sends it (raw JSON); the final response object."""
    response = await client.post(
        "/responses", body=body, cast_to=object, stream=True, stream_cls=openai.AsyncStream[dict[str, Any]]
    )
    final = None
    async for event in response:
        if event.get("type") in ("response.completed", "response.failed", "response.incomplete"):
            final = event["response"]
    assert final is not None
    return final


async def test_codex_tool_loop_completes_on_a_chat_deployment(
    start_gateway, chat_upstream: FakeChatUpstream, caplog: pytest.LogCaptureFixture
) -> None:
    gw: GatewayHarness = await start_gateway(_chat_doc(chat_upstream, "drop"))
    chat_upstream.script(
        ChatScript(text=[], tool_calls=[ToolCallScript(FLAT, ['{"query"', ': "ids"}'])]),
        ChatScript(text=["Found", " it."]),
    )
    caplog.set_level(logging.INFO, logger="modelgate.gateway.chat")
    async with gw.client() as client:
        first_body = codex_body("codex-model", [user_turn("Where are ids documented?")])
        assert len(orjson.dumps(first_body)) > 42_000
        first = await _turn(client, first_body)
        call = next(item for item in first["output"] if item["type"] == "function_call")
        assert (call["namespace"], call["name"], call["arguments"]) == (NAMESPACE, NAMESPACED_TOOL, '{"query": "ids"}')
        second = await _turn(
            client,
            codex_body(
                "codex-model", [user_turn("Where are ids documented?"), *tool_round(call, "docs/operations.md")]
            ),
        )
    assert second["status"] == "completed"
    assert second["output"][0]["content"][0]["text"] == "Found it."
    sent = chat_upstream.requests
    names = [tool["function"]["name"] for tool in sent[0]["tools"]]
    assert FLAT in names and "fetch_doc" not in names and len(names) == 9  # 7 functions + 2 flattened, no web_search
    assert "client_metadata" not in sent[0] and "store" not in sent[0]
    assert "prompt_cache_key" not in sent[0]  # a vLLM deployment: OpenAI-only fields are left out
    replayed = [m for m in sent[1]["messages"] if m.get("tool_calls")]
    assert replayed[0]["tool_calls"][0]["function"]["name"] == FLAT
    assert sent[1]["messages"][-1] == {"role": "tool", "tool_call_id": call["call_id"], "content": "docs/operations.md"}
    noted = [r.getMessage() for r in caplog.records if "leaves out" in r.getMessage()]
    assert len(noted) == 1 and "client_metadata" in noted[0] and "web_search" in noted[0]


async def test_codex_request_non_streamed_maps_namespace_calls_back(
    start_gateway, chat_upstream: FakeChatUpstream
) -> None:
    gw = await start_gateway(_chat_doc(chat_upstream, "drop"))
    chat_upstream.script(ChatScript(text=[], tool_calls=[ToolCallScript(FLAT, ['{"query": "x"}'])]))
    async with gw.client() as client:
        body = codex_body("codex-model", [user_turn("hi")], stream=False)
        response = await client.post("/responses", body=body, cast_to=object)
    call = response["output"][0]  # type: ignore[index]
    assert (call["type"], call["namespace"], call["name"]) == ("function_call", NAMESPACE, NAMESPACED_TOOL)


async def test_hosted_tools_are_refused_by_default_naming_the_tool(
    start_gateway, chat_upstream: FakeChatUpstream
) -> None:
    gw = await start_gateway(_chat_doc(chat_upstream, "refuse"))
    async with gw.client() as client:
        with pytest.raises(openai.BadRequestError) as caught:
            await client.post(
                "/responses", body=codex_body("codex-model", [user_turn("hi")], stream=False), cast_to=object
            )
    assert caught.value.body["param"] == "tools[8].type"  # type: ignore[index]
    assert caught.value.body["code"] == "unsupported_for_deployment"  # type: ignore[index]
    assert chat_upstream.requests == []


async def test_codex_request_passes_through_a_responses_deployment_unchanged(
    start_gateway, responses_upstream: FakeResponsesUpstream
) -> None:
    doc = config_doc(
        [deployment("r", responses_upstream.base_url)], [{"name": "codex-model", "targets": [{"deployment": "r"}]}]
    )
    gw = await start_gateway(doc)
    body = codex_body("codex-model", [user_turn("hi")])
    async with gw.client() as client:
        final = await _turn(client, body)
    assert final["status"] == "completed"
    sent = responses_upstream.creates[-1].body
    assert {k: v for k, v in sent.items() if k != "model"} == {k: v for k, v in body.items() if k != "model"}
