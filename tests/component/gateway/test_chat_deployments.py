"""Models served by chat-completions deployments, alone and mixed with Responses deployments."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import openai
import pytest

from fake_chat_upstream import ChatScript, FakeChatUpstream, ToolCallScript
from fake_responses_upstream import Behaviour
from gateway_harness import GatewayHarness, config_doc, deployment
from redis_server import redis_server  # noqa: F401  (fixture)


@pytest.fixture
async def chat_upstream() -> AsyncIterator[FakeChatUpstream]:
    async with FakeChatUpstream() as fake:
        yield fake


def _chat_dep(name: str, fake: FakeChatUpstream) -> dict:
    return deployment(name, fake.base_url, api="chat_completions", provider="vllm")


async def test_chat_deployment_serves_plain_and_streamed_responses(gateway, chat_upstream) -> None:
    doc = config_doc([_chat_dep("chat", chat_upstream)], [{"name": "llama", "targets": [{"deployment": "chat"}]}])
    gw = await gateway(doc)
    async with gw.client() as client:
        plain = await client.responses.create(model="llama", input="hi", instructions="Be nice.")
        async with client.responses.stream(model="llama", input="hi") as stream:
            deltas = [e.delta async for e in stream if e.type == "response.output_text.delta"]
            final = await stream.get_final_response()
    assert plain.output_text == "Hello from chat."
    assert "".join(deltas) == final.output_text == "Hello from chat."
    sent = chat_upstream.requests[0]
    assert sent["model"] == "up-chat"
    assert sent["messages"][0] == {"role": "system", "content": "Be nice."}
    assert chat_upstream.headers[0]["Authorization"] == "Bearer sk-upstream-secret-value"
    assert final.usage is not None and final.usage.input_tokens == 21 and final.usage.output_tokens == 9
    assert (
        gw.registry.get_sample_value(
            "modelgate_tokens_total",
            {
                "model": "llama",
                "deployment": "chat",
                "key": "test",
                "tenant": "_none",
                "end_user": "_none",
                "type": "output",
                "estimated": "false",
                "operation": "create",
                "tier": "default",
            },
        )
        == 18
    )


async def test_streamed_tool_calls_split_across_chunks_arrive_whole(gateway, chat_upstream) -> None:
    chat_upstream.script(ChatScript(text=[], tool_calls=[ToolCallScript("lookup", ['{"q"', ': "x"}'])]))
    doc = config_doc([_chat_dep("chat", chat_upstream)], [{"name": "llama", "targets": [{"deployment": "chat"}]}])
    gw = await gateway(doc)
    tools = [{"type": "function", "name": "lookup", "parameters": {"type": "object", "properties": {}}}]
    async with gw.client() as client:
        async with client.responses.stream(model="llama", input="hi", tools=tools) as stream:
            final = await stream.get_final_response()
    calls = [item for item in final.output if item.type == "function_call"]
    assert [(c.name, c.arguments) for c in calls] == [("lookup", '{"q": "x"}')]


async def test_untranslatable_fields_get_a_400_naming_the_field(gateway, chat_upstream) -> None:
    doc = config_doc([_chat_dep("chat", chat_upstream)], [{"name": "llama", "targets": [{"deployment": "chat"}]}])
    gw = await gateway(doc)
    async with gw.client() as client:
        with pytest.raises(openai.BadRequestError) as caught:
            await client.responses.create(model="llama", input="hi", tools=[{"type": "web_search"}])
    assert caught.value.body["param"] == "tools[0].type"
    assert chat_upstream.requests == []


async def test_request_a_chat_deployment_cannot_serve_goes_to_a_responses_deployment(
    gateway, chat_upstream, upstream_a
) -> None:
    doc = config_doc(
        [_chat_dep("chat", chat_upstream), deployment("a", upstream_a.base_url)],
        [{"name": "mixed", "targets": [{"deployment": "chat", "weight": 1000}, {"deployment": "a", "weight": 1}]}],
    )
    gw = await gateway(doc)
    async with gw.client() as client:
        raw = await client.responses.with_raw_response.create(model="mixed", input="hi", tools=[{"type": "web_search"}])
    assert raw.headers["x-modelgate-deployment"] == "a"


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
async def test_failing_responses_deployment_falls_back_to_a_chat_deployment(
    gateway, chat_upstream, upstream_a, stream
) -> None:
    upstream_a.script = [Behaviour(status=500)]
    doc = config_doc(
        [deployment("a", upstream_a.base_url), _chat_dep("chat", chat_upstream)],
        [
            {"name": "gpt-4o", "targets": [{"deployment": "a"}], "fallbacks": ["llama"]},
            {"name": "llama", "targets": [{"deployment": "chat"}]},
        ],
    )
    gw = await gateway(doc)
    async with gw.client() as client:
        raw = await client.responses.with_raw_response.create(model="gpt-4o", input="hi", stream=stream)
        if stream:
            events = [e async for e in raw.parse()]
            text = events[-1].response.output_text
            assert events[-1].type == "response.completed"
        else:
            text = raw.parse().output_text
    assert text == "Hello from chat." and raw.headers["x-modelgate-deployment"] == "chat"


async def test_chat_stream_dropped_mid_way_ends_with_response_failed(gateway, chat_upstream) -> None:
    chat_upstream.script(ChatScript(text=["a", " b", " c", " d"], drop_after_chunks=3))
    doc = config_doc([_chat_dep("chat", chat_upstream)], [{"name": "llama", "targets": [{"deployment": "chat"}]}])
    gw = await gateway(doc)
    async with gw.client() as client:
        events = [e async for e in await client.responses.create(model="llama", input="hi", stream=True)]
    assert events[-1].type == "response.failed"


async def test_previous_response_id_without_a_state_store_is_a_clear_400(gateway, chat_upstream) -> None:
    doc = config_doc([_chat_dep("chat", chat_upstream)], [{"name": "llama", "targets": [{"deployment": "chat"}]}])
    gw = await gateway(doc)
    async with gw.client() as client:
        first = await client.responses.create(model="llama", input="hi")
        with pytest.raises(openai.BadRequestError) as caught:
            await client.responses.create(model="llama", input="again", previous_response_id=first.id)
    assert caught.value.body["param"] == "previous_response_id"


async def test_conversation_state_is_shared_by_two_gateways_through_redis(
    tmp_path: Path,
    chat_upstream,
    redis_server,  # noqa: F811
) -> None:
    doc = config_doc(
        [_chat_dep("chat", chat_upstream)],
        [{"name": "llama", "targets": [{"deployment": "chat"}]}],
        state={"redisUrl": redis_server.url},
    )
    gateways = []
    for index in range(2):
        directory = tmp_path / f"gw{index}"
        directory.mkdir()
        harness = GatewayHarness(directory, doc)
        await harness.start()
        gateways.append(harness)
    try:
        async with gateways[0].client() as one, gateways[1].client() as two:
            first = await one.responses.create(model="llama", input="My name is Ada.")
            second = await two.responses.create(model="llama", input="What is my name?", previous_response_id=first.id)
            history = chat_upstream.requests[-1]["messages"]
            assert [m["role"] for m in history] == ["user", "assistant", "user"]
            assert history[0]["content"] == "My name is Ada."
            assert (await two.responses.retrieve(first.id)).output_text == first.output_text
            items = await one.responses.input_items.list(second.id)
            assert items.data[0].content[0].text == "What is my name?"
            await two.responses.delete(first.id)
            with pytest.raises(openai.NotFoundError):
                await one.responses.retrieve(first.id)
    finally:
        for harness in gateways:
            await harness.close()
