"""The Conversations API through the official SDK on Responses, mock and chat deployments."""

from __future__ import annotations

import hashlib

import openai
import pytest

from fake_chat_upstream import FakeChatUpstream
from gateway_harness import GatewayHarness, config_doc, deployment
from modelgate_gateway import ids


async def test_conversation_lifecycle_and_turns(kind_gateway: GatewayHarness, chat_upstream: FakeChatUpstream
                                                ) -> None:
    chat = kind_gateway.state.current().deployments["d"].api.value == "chat_completions"
    async with kind_gateway.client() as client:
        conversation = await client.conversations.create(
            items=[{"type": "message", "role": "user", "content": "My name is Ada."}], metadata={"topic": "names"})
        signing_key = kind_gateway.state.signing_key(kind_gateway.state.current())
        ref = ids.decode_conversation(signing_key, ids.owner_tag(signing_key, ids.key_owner("test", None)),
                                      conversation.id)
        assert conversation.id.startswith("conv_") and ref is not None and ref.deployment == "d"
        assert (await client.conversations.retrieve(conversation.id)).metadata == {"topic": "names"}
        updated = await client.conversations.update(conversation.id, metadata={"topic": "people"})
        assert updated.id == conversation.id and updated.metadata == {"topic": "people"}

        first = await client.responses.create(model="m", input="What is my name?", conversation=conversation.id)
        assert first.conversation is not None and first.conversation.id == conversation.id
        async with client.responses.stream(model="m", input="And again?",
                                           conversation={"id": conversation.id}) as stream:
            second = await stream.get_final_response()
        assert second.conversation is not None and second.conversation.id == conversation.id
        if chat:  # the upstream got the conversation's items as history, then the earlier turn
            contents = [m.get("content") for m in chat_upstream.requests[-1]["messages"]]
            assert contents[0] == "My name is Ada." and contents[1] == "What is my name?"

        added = await client.conversations.items.create(conversation.id, items=[
            {"type": "message", "role": "user", "content": "Note this."}])
        listed = await client.conversations.items.list(conversation.id, order="asc", limit=100)
        texts = [item.content[0].text for item in listed.data if item.type == "message" and item.role == "user"]
        assert texts[0] == "My name is Ada." and texts[-1] == "Note this."
        assert len(listed.data) == 6  # seed, two turns (input + output), the added item
        item = await client.conversations.items.retrieve(added.data[0].id, conversation_id=conversation.id)
        assert item.id == added.data[0].id
        after = await client.conversations.items.delete(added.data[0].id, conversation_id=conversation.id)
        assert after.id == conversation.id
        counted = await client.responses.input_tokens.count(model="m", input="hi", conversation=conversation.id)
        assert counted.input_tokens > 0
        deleted = await client.conversations.delete(conversation.id)
        assert deleted.id == conversation.id and deleted.deleted
        with pytest.raises(openai.NotFoundError):
            await client.conversations.retrieve(conversation.id)


async def test_conversation_ids_are_owner_bound_and_unforgeable(start_gateway, responses_upstream) -> None:
    doc = config_doc([deployment("r", responses_upstream.base_url)], [{"name": "m", "targets": [{"deployment": "r"}]}])
    doc["spec"]["auth"]["keys"].append({"name": "other", "sha256": hashlib.sha256(b"sk-other").hexdigest()})
    gw = await start_gateway(doc)
    async with gw.client() as mine, gw.client(api_key="sk-other") as theirs:
        conversation = await mine.conversations.create()
        seen = len(responses_upstream.seen)
        with pytest.raises(openai.NotFoundError):
            await theirs.conversations.retrieve(conversation.id)
        with pytest.raises(openai.BadRequestError) as caught:
            await theirs.responses.create(model="m", input="hi", conversation=conversation.id)
        assert caught.value.code == "conversation_not_found"
        with pytest.raises(openai.NotFoundError):
            await mine.conversations.retrieve(conversation.id[:-4] + "AAAA")
        assert len(responses_upstream.seen) == seen  # nothing reached the upstream


async def test_conversations_on_chat_without_a_store_are_refused(start_gateway, chat_upstream: FakeChatUpstream
                                                                 ) -> None:
    doc = config_doc([deployment("c", chat_upstream.base_url, api="chat_completions", provider="vllm")],
                     [{"name": "m", "targets": [{"deployment": "c"}]}])
    gw = await start_gateway(doc)
    async with gw.client() as client:
        with pytest.raises(openai.BadRequestError) as caught:
            await client.conversations.create()
    assert caught.value.code == "unsupported_for_deployment" and "redisUrl" in caught.value.message
