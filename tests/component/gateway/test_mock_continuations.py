"""The mock provider continues only what it stored, as OpenAI: a store=false response cannot be continued over HTTP."""

from __future__ import annotations

import openai
import pytest

from gateway_harness import config_doc


async def test_the_mock_refuses_to_continue_a_response_it_did_not_store(gateway) -> None:
    mock = {"name": "m", "provider": "mock", "model": "mock-model"}
    gw = await gateway(config_doc([mock], [{"name": "gpt-4o", "targets": [{"deployment": "m"}]}]))
    async with gw.client(timeout=5) as client:
        stored = await client.responses.create(model="gpt-4o", input="hi")
        assert (await client.responses.create(model="gpt-4o", input="on", previous_response_id=stored.id)).id
        unstored = await client.responses.create(model="gpt-4o", input="hi", store=False)
        with pytest.raises(openai.BadRequestError) as caught:
            await client.responses.create(model="gpt-4o", input="on", previous_response_id=unstored.id)
    assert caught.value.code == "previous_response_not_found"
