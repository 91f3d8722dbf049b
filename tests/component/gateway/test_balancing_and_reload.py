"""Load-balancing distribution over real sockets, and hot reload under load."""

from __future__ import annotations

import asyncio
import time

from gateway_harness import config_doc, deployment


async def test_weighted_random_splits_traffic_by_weight(gateway, upstream_a, upstream_b) -> None:
    doc = config_doc(
        [deployment("a", upstream_a.base_url), deployment("b", upstream_b.base_url)],
        [{"name": "gpt-4o", "targets": [{"deployment": "a", "weight": 3}, {"deployment": "b", "weight": 1}]}],
    )
    gw = await gateway(doc)
    gw.state.rng.seed(7)
    total = 400
    async with gw.client() as client:
        for _ in range(total):
            await client.responses.create(model="gpt-4o", input="hi")
    share_a = len(upstream_a.creates) / total
    # Binomial(400, 0.75): sd ~ 0.022; 4 sd keeps the test stable while a 1:1 split would fail it.
    assert abs(share_a - 0.75) < 0.09, share_a
    assert len(upstream_a.creates) + len(upstream_b.creates) == total


async def test_least_outstanding_prefers_the_idle_deployment(gateway, upstream_a, upstream_b) -> None:
    from fake_responses_upstream import Behaviour

    upstream_a.script = [Behaviour(token_delay=0.05)] * 4
    doc = config_doc(
        [deployment("a", upstream_a.base_url), deployment("b", upstream_b.base_url)],
        [{"name": "gpt-4o", "strategy": "least-outstanding", "targets": [{"deployment": "a"}, {"deployment": "b"}]}],
    )
    gw = await gateway(doc)
    gw.state.board.get("a").outstanding = 5  # a is busy with other requests
    async with gw.client() as client:
        for _ in range(5):
            await client.responses.create(model="gpt-4o", input="hi")
    assert len(upstream_b.creates) == 5


async def test_lowest_latency_converges_on_the_faster_deployment(gateway, upstream_a, upstream_b) -> None:
    doc = config_doc(
        [deployment("a", upstream_a.base_url), deployment("b", upstream_b.base_url)],
        [{"name": "gpt-4o", "strategy": "lowest-latency", "targets": [{"deployment": "a"}, {"deployment": "b"}]}],
    )
    gw = await gateway(doc)
    gw.state.board.get("a").ewma_first_byte = 5.0  # a measured slow earlier
    gw.state.board.get("b").ewma_first_byte = 0.001
    async with gw.client() as client:
        for _ in range(10):
            await client.responses.create(model="gpt-4o", input="hi")
    assert len(upstream_b.creates) == 10 and upstream_a.creates == []


async def test_hot_reload_under_load_drops_no_request_and_bad_config_keeps_last_good(
    gateway, upstream_a, upstream_b
) -> None:
    doc = config_doc(
        [deployment("a", upstream_a.base_url), deployment("b", upstream_b.base_url)],
        [{"name": "gpt-4o", "targets": [{"deployment": "a"}]}],
    )
    gw = await gateway(doc)
    failures: list[BaseException] = []
    stop = asyncio.Event()

    async def load(client) -> int:
        done = 0
        while not stop.is_set() and done < 500:  # bounded
            try:
                stream = done % 2 == 0
                result = await client.responses.create(model="gpt-4o", input="hi", stream=stream)
                if stream:
                    events = [e async for e in result]
                    assert events[-1].type == "response.completed"
            except Exception as exc:
                failures.append(exc)
            done += 1
        return done

    async with gw.client() as client:
        workers = [asyncio.create_task(load(client)) for _ in range(4)]
        for target in ("b", "a", "b"):
            old = gw.state.current().checksum
            doc["spec"]["models"][0]["targets"] = [{"deployment": target}]
            gw.write(doc)
            await gw.wait_for_checksum_change(old)
        good = gw.state.current().checksum
        gw.config_path.write_text("apiVersion: config.modelgate.dev/v1alpha1\nkind: GatewayConfig\nspec: {models: 7}\n")
        deadline = time.monotonic() + 5
        while gw.registry.get_sample_value("modelgate_config_reloads_total", {"result": "failure"}) != 1:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        stop.set()
        counts = await asyncio.gather(*workers)
        assert gw.state.current().checksum == good
        assert gw.registry.get_sample_value("modelgate_config_last_reload_successful") == 0
        await client.responses.create(model="gpt-4o", input="still serving")
    assert failures == []
    assert sum(counts) > 8
    assert upstream_a.creates and upstream_b.creates


async def test_full_deployment_is_skipped_until_a_slot_frees(gateway, upstream_a, upstream_b) -> None:
    from fake_responses_upstream import Behaviour

    upstream_a.script = [Behaviour(token_delay=0.05)]
    doc = config_doc(
        [deployment("a", upstream_a.base_url, maxConcurrentRequests=1), deployment("b", upstream_b.base_url)],
        [{"name": "gpt-4o", "targets": [{"deployment": "a", "weight": 1}, {"deployment": "b", "weight": 0}]}],
    )
    gw = await gateway(doc)
    async with gw.client() as client:
        stream = await client.responses.create(model="gpt-4o", input="slow", stream=True)
        first = await anext(aiter(stream))  # a is busy with this stream
        assert first.type == "response.created"
        raw = await client.responses.with_raw_response.create(model="gpt-4o", input="next")
        assert raw.headers["x-modelgate-deployment"] == "b"
        _ = [e async for e in stream]
        raw = await client.responses.with_raw_response.create(model="gpt-4o", input="after")
        assert raw.headers["x-modelgate-deployment"] == "a"
