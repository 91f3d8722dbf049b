"""WebSocket mode through the SDK's ``responses.connect()``: multi-turn tool loops of ``store: false``
responses over one socket, on every deployment kind.

An upstream that speaks WebSocket mode gets one socket for the lane and each turn as a frame (it
keeps the last response itself); an HTTP-only Responses upstream, a chat deployment and the mock
get one HTTP call per turn, the gateway sending the context the socket remembers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from fake_chat_upstream import ChatScript, FakeChatUpstream, ToolCallScript
from fake_responses_upstream import Behaviour
from fake_websocket_upstream import FakeWebSocketUpstream
from gateway_harness import config_doc, deployment
from raw_http_server import eventually
from websocket_client import final_response, turn

TURNS = 5
TOOLS = [{"type": "function", "name": "lookup", "parameters": {"type": "object", "properties": {}}}]


def _call(index: int) -> dict[str, Any]:
    return {
        "type": "function_call",
        "id": f"fc_{index}",
        "call_id": f"call_{index}",
        "name": "lookup",
        "arguments": "{}",
        "status": "completed",
    }


@pytest.fixture
async def ws_upstream() -> AsyncIterator[FakeWebSocketUpstream]:
    fake = FakeWebSocketUpstream("w")
    await fake.start()
    yield fake
    await fake.close()


@pytest.fixture
async def chat_upstream() -> AsyncIterator[FakeChatUpstream]:
    async with FakeChatUpstream() as fake:
        yield fake


async def _loop(gw: Any, first_input: str) -> list[Any]:
    """A tool loop: each turn answers the previous turn's function call (or says more, without one)."""
    responses = []
    async with gw.client(timeout=10) as client, client.responses.connect() as conn:
        previous = None
        text_input: Any = first_input
        for _ in range(TURNS):
            events = (
                await turn(
                    conn, model="gpt-4o", input=text_input, store=False, tools=TOOLS, previous_response_id=previous
                )
                if previous
                else await turn(conn, model="gpt-4o", input=text_input, store=False, tools=TOOLS)
            )
            response = final_response(events)
            responses.append(response)
            previous = response.id
            calls = [item for item in response.output if item.type == "function_call"]
            text_input = (
                [{"type": "function_call_output", "call_id": calls[0].call_id, "output": "42"}]
                if calls
                else [{"role": "user", "content": "and then?"}]
            )
    return responses


async def test_tool_loop_on_a_deployment_that_speaks_websocket_uses_one_upstream_socket(gateway, ws_upstream) -> None:
    ws_upstream.script = [Behaviour(tool_items=[_call(i)]) for i in range(TURNS)]
    dep = deployment("w", ws_upstream.base_url, websocket=True)
    gw = await gateway(config_doc([dep], [{"name": "gpt-4o", "targets": [{"deployment": "w"}]}]))
    responses = await _loop(gw, "find fizz_buzz")
    await eventually(lambda: ws_upstream.open_sockets == 0, timeout=5)  # the client left: its upstream socket too
    assert ws_upstream.sockets == 1 and ws_upstream.turn_sockets == [0] * TURNS
    assert not ws_upstream.creates  # nothing went over HTTP
    turns = [seen.body for seen in ws_upstream.turns]
    upstream_ids = ws_upstream.answered
    for index, body in enumerate(turns):
        assert body["type"] == "response.create" and body["model"] == "up-w" and "stream" not in body
        assert body["store"] is False
        if index:  # continued by the upstream's own id, on the socket that holds it
            assert body["previous_response_id"] == upstream_ids[index - 1]
            assert body["input"] == [{"type": "function_call_output", "call_id": f"call_{index - 1}", "output": "42"}]
    assert all(r.id not in upstream_ids and r.id.startswith("resp_") for r in responses)
    assert ws_upstream.turns[0].headers["Authorization"] == "Bearer sk-upstream-secret-value"
    await _assert_turns_recorded(gw, "w")


async def test_tool_loop_on_an_http_only_deployment_sends_the_remembered_context(gateway, upstream_a) -> None:
    upstream_a.script = [Behaviour(tool_items=[_call(i)]) for i in range(TURNS)]
    gw = await gateway(
        config_doc([deployment("a", upstream_a.base_url)], [{"name": "gpt-4o", "targets": [{"deployment": "a"}]}])
    )
    responses = await _loop(gw, "find fizz_buzz")
    creates = [seen.body for seen in upstream_a.creates]
    assert len(creates) == TURNS
    assert all(
        body["stream"] is True and body["store"] is False and "previous_response_id" not in body for body in creates
    )
    assert all("type" not in body and "stream_id" not in body for body in creates)
    # Turn 2's input: turn 1's input, turn 1's output items, then the new function output.
    first_output = creates[1]["input"][1:-1]
    assert creates[1]["input"][0] == {"type": "message", "role": "user", "content": "find fizz_buzz"}
    assert [item["type"] for item in first_output] == ["function_call", "message"]
    assert creates[1]["input"][-1] == {"type": "function_call_output", "call_id": "call_0", "output": "42"}
    assert len(creates[-1]["input"]) == 1 + 3 * (TURNS - 1)  # grows by (call, message, output) per turn
    assert len({r.id for r in responses}) == TURNS
    await _assert_turns_recorded(gw, "a")


async def test_tool_loop_on_a_chat_deployment_sends_the_remembered_context(gateway, chat_upstream) -> None:
    chat_upstream.script(
        *(ChatScript(text=[], tool_calls=[ToolCallScript("lookup", ["{}"], call_id=f"call_{i}")]) for i in range(TURNS))
    )
    dep = deployment("c", chat_upstream.base_url, api="chat_completions", provider="vllm")
    gw = await gateway(config_doc([dep], [{"name": "gpt-4o", "targets": [{"deployment": "c"}]}]))
    await _loop(gw, "find fizz_buzz")
    assert len(chat_upstream.requests) == TURNS
    last = chat_upstream.requests[-1]["messages"]
    assert last[0] == {"role": "user", "content": "find fizz_buzz"}
    assert [m["tool_call_id"] for m in last if m["role"] == "tool"] == [f"call_{i}" for i in range(TURNS - 1)]
    await _assert_turns_recorded(gw, "c")


async def test_loop_on_the_mock_continues_store_false_responses(gateway) -> None:
    mock = {"name": "m", "provider": "mock", "model": "mock-model", "mock": {"text": "mock says hi"}}
    gw = await gateway(config_doc([mock], [{"name": "gpt-4o", "targets": [{"deployment": "m"}]}]))
    responses = await _loop(gw, "hello")
    assert [r.output_text for r in responses] == ["mock says hi"] * TURNS
    await _assert_turns_recorded(gw, "m")


async def _assert_turns_recorded(gw: Any, dep: str) -> None:
    def turns() -> list[dict[str, Any]]:
        return [line for line in gw.log_lines() if line.get("transport") == "websocket"]

    await eventually(lambda: len(turns()) >= TURNS, timeout=5)
    lines = turns()
    assert len(lines) == TURNS and all(line["status"] == 200 and line["deployment"] == dep for line in lines)
    assert all(line["route"] == "create" and line["output_tokens"] > 0 for line in lines)
    labels = {"model": "gpt-4o", "deployment": dep, "key": "test", "outcome": "2xx"}
    assert gw.registry.get_sample_value("modelgate_websocket_turns_total", labels) == TURNS
    handshakes = [line for line in gw.log_lines() if line["route"] == "websocket"]
    assert [line["status"] for line in handshakes] == [101]
