"""The OpenAI Agents SDK (a real client) runs a tool loop through the gateway with response chaining."""

from __future__ import annotations

from typing import Any

import pytest
from agents import Agent, OpenAIResponsesModel, RunConfig, Runner, function_tool

from fake_chat_upstream import ChatScript, FakeChatUpstream, ToolCallScript
from gateway_harness import config_doc, deployment
from modelgate_gateway import ids


@function_tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny in {city}"


@pytest.mark.parametrize("streamed", [False, True])
async def test_agent_tool_loop_with_auto_previous_response_id(start_gateway, chat_upstream: FakeChatUpstream,
                                                              redis_server: Any, streamed: bool) -> None:
    doc = config_doc([deployment("chat", chat_upstream.base_url, api="chat_completions", provider="vllm")],
                     [{"name": "agent-model", "targets": [{"deployment": "chat"}]}],
                     state={"redisUrl": redis_server.url})
    gw = await start_gateway(doc)
    chat_upstream.script(ChatScript(text=[], tool_calls=[ToolCallScript("get_weather", ['{"city": "Paris"}'])]),
                         ChatScript(text=["It is", " sunny."]))
    async with gw.client() as client:
        agent = Agent(name="weather", instructions="Answer about the weather.", tools=[get_weather],
                      model=OpenAIResponsesModel(model="agent-model", openai_client=client))
        config = RunConfig(tracing_disabled=True)
        if streamed:
            run = Runner.run_streamed(agent, "Weather in Paris?", run_config=config, auto_previous_response_id=True)
            async for _ in run.stream_events():
                pass
            result: Any = run
        else:
            result = await Runner.run(agent, "Weather in Paris?", run_config=config, auto_previous_response_id=True)
    assert result.final_output == "It is sunny."
    first, second = chat_upstream.requests
    assert [m["role"] for m in first["messages"]] == ["system", "user"]
    # With auto_previous_response_id the SDK sends only the tool output and the first response's id
    # (the gateway's): the upstream still got the whole conversation, from the gateway's store.
    roles = [m["role"] for m in second["messages"]]
    assert roles == ["system", "user", "assistant", "tool"]
    assert second["messages"][-1]["content"] == "sunny in Paris"
    response_ids = [r.response_id for r in result.raw_responses]
    assert all(ids.peek(rid) is not None for rid in response_ids)
