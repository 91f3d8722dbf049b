"""``responses.input_tokens.count`` and ``responses.compact`` through the SDK on every deployment kind."""

from __future__ import annotations

import orjson

from fake_chat_upstream import FakeChatUpstream
from gateway_harness import GatewayHarness
from raw_http_server import eventually


def _tokens(gw: GatewayHarness, token_type: str) -> float:
    return gw.registry.get_sample_value("modelgate_tokens_total", {
        "model": "m", "deployment": "d", "type": token_type, "estimated": "false"}) or 0.0


async def test_input_tokens_are_counted_with_the_previous_response_and_not_billed(kind_gateway: GatewayHarness
                                                                                  ) -> None:
    async with kind_gateway.client() as client:
        first = await client.responses.create(model="m", input="My name is Ada and I write programs.")
        await eventually(lambda: _tokens(kind_gateway, "input") > 0, timeout=5)
        billed = _tokens(kind_gateway, "input")
        alone = await client.responses.input_tokens.count(model="m", input="And what do I do?")
        raw = await client.responses.input_tokens.with_raw_response.count(
            model="m", input="And what do I do?", previous_response_id=first.id)
        together = raw.parse()
        without_model = await client.responses.input_tokens.count(input="And?", previous_response_id=first.id)
    assert alone.object == "response.input_tokens" and 0 < alone.input_tokens < together.input_tokens
    assert without_model.input_tokens > 0
    assert raw.headers["X-Modelgate-Deployment"] == "d"
    estimated = bool(orjson.loads(raw.http_response.content).get("estimated"))
    assert estimated == (kind_gateway.state.current().deployments["d"].api.value == "chat_completions")
    assert _tokens(kind_gateway, "input") == billed  # counting is free


async def test_compact_goes_to_the_previous_responses_deployment_and_is_billed(kind_gateway: GatewayHarness,
                                                                               chat_upstream: FakeChatUpstream
                                                                               ) -> None:
    chat = kind_gateway.state.current().deployments["d"].api.value == "chat_completions"
    async with kind_gateway.client() as client:
        first = await client.responses.create(model="m", input="Remember: the answer is 42.")
        await eventually(lambda: _tokens(kind_gateway, "input") > 0, timeout=5)
        billed = _tokens(kind_gateway, "input")
        raw = await client.responses.with_raw_response.compact(model="m", previous_response_id=first.id)
        compacted = raw.parse()
        assert compacted.object == "response.compaction"
        assert compacted.output[-1].type == "compaction"
        assert compacted.usage.input_tokens > 0
        # The compacted window (as sent: the SDK's output types do not cover user messages) continues
        # the conversation as the input of a new response.
        window = orjson.loads(raw.http_response.content)["output"]
        follow = await client.responses.create(model="m", input=[*window, {"role": "user", "content": "What is it?"}])
        assert follow.status == "completed"
    if chat:  # the model summarised the conversation; the summary came back as a message of the next turn
        summarising, continued = chat_upstream.requests[-2:]
        assert summarising["messages"][-1]["content"].startswith("Summarise the conversation")
        assert [m["content"] for m in summarising["messages"][:2]] == ["Remember: the answer is 42.",
                                                                       "Hello from chat."]
        assert continued["messages"][0]["content"] == "Remember: the answer is 42."
        assert continued["messages"][1]["content"].endswith("Hello from chat.")  # the summary
        assert continued["messages"][1]["content"].startswith("[Summary of the earlier conversation]")
    await eventually(lambda: _tokens(kind_gateway, "input") >= billed + compacted.usage.input_tokens, timeout=5)
