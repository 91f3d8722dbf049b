"""The official SDK's helpers on every deployment kind: parse(), retrieve(stream=True), input_items.list."""

from __future__ import annotations

import openai
import pytest
from pydantic import BaseModel

from fake_chat_upstream import ChatScript, FakeChatUpstream
from fake_responses_upstream import Behaviour, FakeResponsesUpstream
from gateway_harness import GatewayHarness
from mock_config import JSON_TEXT


class Person(BaseModel):
    name: str
    age: int


async def test_parse_with_a_pydantic_model(kind_gateway: GatewayHarness, responses_upstream: FakeResponsesUpstream,
                                           chat_upstream: FakeChatUpstream) -> None:
    answer = JSON_TEXT  # what the mock answers; the fakes are told to answer the same
    responses_upstream.script = [Behaviour(text=answer)]
    chat_upstream.script(ChatScript(text=[answer[:10], answer[10:]]))
    async with kind_gateway.client() as client:
        parsed = await client.responses.parse(model="m", input="Who?", text_format=Person)
    assert parsed.output_parsed == Person(name="Ada", age=36)


async def test_retrieve_stream_and_input_items(kind_gateway: GatewayHarness) -> None:
    kind = kind_gateway.state.current().deployments["d"].provider.value
    async with kind_gateway.client() as client:
        created = await client.responses.create(model="m", input="Remember this.")
        items = await client.responses.input_items.list(created.id)
        assert [item.content[0].text for item in items.data if item.type == "message"] == ["Remember this."]
        # Only background responses can be streamed again (as OpenAI answers): a clear 400, never a
        # stream with a fake failure in it.
        with pytest.raises(openai.BadRequestError) as caught:
            stream = await client.responses.retrieve(created.id, stream=True)
            async for _ in stream:
                pass
    assert caught.value.param == "stream", kind
