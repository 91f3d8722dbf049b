"""Background mode on chat deployments: an honest 400, or a Responses deployment of the model serves it."""

from __future__ import annotations

import openai
import pytest

from fake_chat_upstream import FakeChatUpstream
from fake_responses_upstream import FakeResponsesUpstream
from gateway_harness import config_doc, deployment

CHAT = {"api": "chat_completions", "provider": "vllm"}


async def test_background_on_a_chat_deployment_is_a_clear_400(start_gateway, chat_upstream: FakeChatUpstream) -> None:
    gw = await start_gateway(config_doc([deployment("chat", chat_upstream.base_url, **CHAT)],
                                        [{"name": "m", "targets": [{"deployment": "chat"}]}]))
    async with gw.client() as client:
        with pytest.raises(openai.BadRequestError) as caught:
            await client.responses.create(model="m", input="hi", background=True)
    assert caught.value.param == "background" and caught.value.code == "unsupported_for_deployment"
    assert "Responses deployment" in caught.value.message
    assert chat_upstream.requests == []


async def test_background_goes_to_the_models_responses_deployment(start_gateway, chat_upstream: FakeChatUpstream,
                                                                  responses_upstream: FakeResponsesUpstream) -> None:
    gw = await start_gateway(config_doc(
        [deployment("chat", chat_upstream.base_url, **CHAT), deployment("r", responses_upstream.base_url)],
        [{"name": "m", "targets": [{"deployment": "chat", "weight": 1000}, {"deployment": "r", "weight": 0}]}]))
    async with gw.client() as client:
        created = await client.responses.create(model="m", input="hi", background=True)
    assert created.background is True
    assert chat_upstream.requests == [] and len(responses_upstream.creates) == 1
