"""Response ids route follow-up calls back to the deployment that holds the response."""

from __future__ import annotations

import openai
import pytest

from gateway_harness import config_doc, deployment
from modelgate_gateway import ids


def _balanced(upstream_a, upstream_b) -> dict:
    return config_doc(
        [deployment("a", upstream_a.base_url), deployment("b", upstream_b.base_url)],
        [{"name": "gpt-4o", "targets": [{"deployment": "a"}, {"deployment": "b"}]}],
    )


async def test_previous_response_id_and_follow_ups_reach_the_creating_deployment(
    gateway, upstream_a, upstream_b
) -> None:
    gw = await gateway(_balanced(upstream_a, upstream_b))
    async with gw.client() as client:
        created = [await client.responses.create(model="gpt-4o", input=f"turn {i}") for i in range(12)]
        by_deployment = {}
        for response in created:
            ref = ids.peek(response.id)
            assert ref is not None
            by_deployment.setdefault(ref.deployment, response)
        assert set(by_deployment) == {"a", "b"}  # both deployments served some
        for name, response in by_deployment.items():
            upstream = upstream_a if name == "a" else upstream_b
            follow = await client.responses.create(model="gpt-4o", input="next", previous_response_id=response.id)
            assert upstream.creates[-1].body["previous_response_id"] == ids.peek(response.id).upstream_id
            assert ids.peek(follow.id).deployment == name
            again = await client.responses.retrieve(response.id)
            assert again.id == response.id and again.output_text == response.output_text
            items = await client.responses.input_items.list(response.id)
            assert items.data[0].content[0].text.startswith("turn")
            cancelled = await client.responses.cancel(response.id)
            assert cancelled.id == response.id and cancelled.status == "cancelled"
            await client.responses.delete(response.id)
            with pytest.raises(openai.NotFoundError):
                await client.responses.retrieve(response.id)


async def test_streamed_response_keeps_one_id_everywhere(gateway, upstream_a, upstream_b) -> None:
    gw = await gateway(_balanced(upstream_a, upstream_b))
    async with gw.client() as client:
        stream = await client.responses.create(model="gpt-4o", input="hi", stream=True)
        events = [e async for e in stream]
        rid = events[0].response.id
        assert events[-1].response.id == rid
        assert (await client.responses.retrieve(rid)).id == rid


async def test_ids_survive_a_gateway_restart_and_work_on_another_replica(gateway, upstream_a, upstream_b) -> None:
    doc = _balanced(upstream_a, upstream_b)
    first = await gateway(doc)
    second = await gateway(doc)  # another replica sharing the signing key
    async with first.client() as c1, second.client() as c2:
        response = await c1.responses.create(model="gpt-4o", input="hi")
        assert (await c2.responses.retrieve(response.id)).output_text == response.output_text


async def test_forged_or_foreign_ids_are_rejected(gateway, upstream_a, upstream_b) -> None:
    gw = await gateway(_balanced(upstream_a, upstream_b))
    other_key = b"some-other-key"
    forged = ids.encode(other_key, ids.owner_tag(other_key, ids.key_owner("test", None)), "b", "resp_b000001")
    async with gw.client() as client:
        with pytest.raises(openai.NotFoundError):
            await client.responses.retrieve(forged)
        with pytest.raises(openai.NotFoundError):
            await client.responses.retrieve("resp_a000001")
        with pytest.raises(openai.BadRequestError) as caught:
            await client.responses.create(model="gpt-4o", input="x", previous_response_id=forged)
    assert caught.value.body["param"] == "previous_response_id"
    assert upstream_a.seen == [] and upstream_b.seen == []


async def test_editing_weights_or_rotating_keys_keeps_ids_valid(gateway, upstream_a, upstream_b) -> None:
    doc = _balanced(upstream_a, upstream_b)
    gw = await gateway(doc)
    async with gw.client() as client:
        response = await client.responses.create(model="gpt-4o", input="hi")
        old = gw.state.current().checksum
        doc["spec"]["models"][0]["targets"] = [{"deployment": "a", "weight": 5}, {"deployment": "b", "weight": 0}]
        (gw.secrets_dir / "upstream-key").write_text("sk-rotated")
        gw.write(doc)
        await gw.wait_for_checksum_change(old)
        assert (await client.responses.retrieve(response.id)).id == response.id
