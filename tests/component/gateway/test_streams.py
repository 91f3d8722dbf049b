"""What happens after the first byte: mid-stream failures and client disconnects."""

from __future__ import annotations

import asyncio
import time

import aiohttp

from fake_responses_upstream import Behaviour
from gateway_harness import API_KEY, config_doc, deployment


def _doc(upstream_a, upstream_b, **timeouts) -> dict:
    return config_doc(
        [
            deployment("a", upstream_a.base_url, timeouts={"firstByteSeconds": 5, **timeouts}),
            deployment("b", upstream_b.base_url),
        ],
        [{"name": "gpt-4o", "targets": [{"deployment": "a", "weight": 1}, {"deployment": "b", "weight": 0}]}],
    )


async def test_upstream_drop_mid_stream_ends_with_response_failed_and_no_duplicate_text(
    gateway, upstream_a, upstream_b
) -> None:
    upstream_a.script = [Behaviour(drop_after_deltas=3)]
    gw = await gateway(_doc(upstream_a, upstream_b))
    async with gw.client() as client:
        stream = await client.responses.create(model="gpt-4o", input="hi", stream=True)
        events = [e async for e in stream]
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert "".join(deltas) == "Alpha answers with"  # three deltas, never replayed from b
    assert events[-1].type == "response.failed"
    assert events[-1].response.error is not None and "a" in events[-1].response.error.message
    assert events[-1].sequence_number == events[-2].sequence_number + 1
    assert events[-1].response.id == events[0].response.id
    assert upstream_b.creates == []  # no failover after output reached the client


async def test_stalled_stream_times_out_with_response_failed(gateway, upstream_a, upstream_b) -> None:
    upstream_a.script = [Behaviour(stall_after_deltas=2)]
    gw = await gateway(_doc(upstream_a, upstream_b, streamIdleSeconds=0.3))
    async with gw.client() as client:
        stream = await client.responses.create(model="gpt-4o", input="hi", stream=True)
        events = [e async for e in stream]
    assert events[-1].type == "response.failed"


async def test_client_disconnect_cancels_the_upstream_request_quickly(gateway, upstream_a, upstream_b) -> None:
    upstream_a.script = [Behaviour(token_delay=0.2)]
    gw = await gateway(_doc(upstream_a, upstream_b))
    async with aiohttp.ClientSession() as session:
        resp = await session.post(
            f"{gw.base_url}/responses",
            json={"model": "gpt-4o", "input": "hi", "stream": True},
            headers={"Authorization": f"Bearer {API_KEY}"},
        )
        await resp.content.readuntil(b"response.output_text.delta")
        resp.close()  # the client goes away mid-stream
        closed_at = time.monotonic()
    await asyncio.wait_for(upstream_a.cancelled.wait(), 2)
    assert upstream_a.cancelled_at is not None and upstream_a.cancelled_at - closed_at < 2


async def test_client_disconnect_before_first_byte_cancels_the_upstream(gateway, upstream_a, upstream_b) -> None:
    upstream_a.script = [Behaviour(hang=True)]
    gw = await gateway(_doc(upstream_a, upstream_b))
    async with aiohttp.ClientSession() as session:
        task = asyncio.create_task(
            session.post(
                f"{gw.base_url}/responses",
                json={"model": "gpt-4o", "input": "x"},
                headers={"Authorization": f"Bearer {API_KEY}"},
            )
        )
        while not upstream_a.creates:
            await asyncio.sleep(0.01)
        task.cancel()
    await asyncio.wait_for(upstream_a.cancelled.wait(), 2)


async def test_abandoned_stream_is_accounted_once_with_estimated_tokens(gateway, upstream_a, upstream_b) -> None:
    upstream_a.script = [Behaviour(token_delay=0.2)]
    gw = await gateway(_doc(upstream_a, upstream_b))
    async with aiohttp.ClientSession() as session:
        resp = await session.post(
            f"{gw.base_url}/responses",
            json={"model": "gpt-4o", "input": "hi", "stream": True},
            headers={"Authorization": f"Bearer {API_KEY}"},
        )
        await resp.content.readuntil(b"response.output_text.delta")
        resp.close()
    await asyncio.wait_for(upstream_a.cancelled.wait(), 2)

    def finished() -> float:
        return sum(
            gw.registry.get_sample_value("modelgate_requests_total", labels) or 0
            for labels in [
                {"model": "gpt-4o", "deployment": "a", "key": "test", "stream": "true", "outcome": o}
                for o in ("client_disconnected",)
            ]
        )

    deadline = time.monotonic() + 2
    while finished() < 1 and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    assert finished() == 1
    assert gw.registry.get_sample_value("modelgate_requests_in_flight") == 0
    out = gw.registry.get_sample_value(
        "modelgate_tokens_total",
        {
            "model": "gpt-4o",
            "deployment": "a",
            "key": "test",
            "tenant": "_none",
            "end_user": "_none",
            "type": "output",
            "estimated": "true",
            "operation": "create",
            "tier": "default",
        },
    )
    assert out is not None and out >= 1
