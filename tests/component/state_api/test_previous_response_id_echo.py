"""Every id a client sees is a gateway id: ``previous_response_id`` is echoed as the client sent it."""

from __future__ import annotations

from gateway_harness import GatewayHarness


async def test_previous_response_id_is_echoed_as_the_gateway_id(kind_gateway: GatewayHarness) -> None:
    async with kind_gateway.client() as client:
        first = await client.responses.create(model="m", input="My name is Ada.")
        second = await client.responses.create(model="m", input="And now?", previous_response_id=first.id)
        assert second.previous_response_id == first.id
        stored = await client.responses.retrieve(second.id)
        assert stored.previous_response_id == first.id
        # The echoed id is a working id: it retrieves the first response.
        assert (await client.responses.retrieve(stored.previous_response_id)).id == first.id


async def test_streamed_previous_response_id_is_echoed_as_the_gateway_id(kind_gateway: GatewayHarness) -> None:
    async with kind_gateway.client() as client:
        first = await client.responses.create(model="m", input="My name is Ada.")
        async with client.responses.stream(model="m", input="And now?", previous_response_id=first.id) as stream:
            events = [event async for event in stream]
            final = await stream.get_final_response()
        created = next(e for e in events if e.type == "response.created")
        assert created.response.previous_response_id == first.id
        assert final.previous_response_id == first.id
        assert (await client.responses.retrieve(final.id)).previous_response_id == first.id
