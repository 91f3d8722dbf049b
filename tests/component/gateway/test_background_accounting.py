"""Background responses are charged once, with their real usage, when they end: whoever polls them, or nobody."""

from __future__ import annotations

from typing import Any

import pytest

from fake_responses_upstream import FakeResponsesUpstream
from gateway_harness import GatewayHarness, config_doc, deployment
from raw_http_server import eventually

PRICING = {"inputUsdPerMillionTokens": 2.0, "cachedInputUsdPerMillionTokens": 0.5, "outputUsdPerMillionTokens": 8.0}
WORDS = len("Alpha answers with seven short words".split())
FULL_COST = (15 * 2.0 + 5 * 0.5 + WORDS * 8.0) / 1e6  # the fake: 20 input tokens (5 cached), a token per word


def _doc(upstream: FakeResponsesUpstream, **follow_up: Any) -> dict:
    settings = {"pollIntervalSeconds": 0.05, "maxPollIntervalSeconds": 0.2, "leaseSeconds": 1, **follow_up}
    return config_doc(
        [deployment("a", upstream.base_url)],
        [{"name": "gpt-4o", "targets": [{"deployment": "a"}], "pricing": PRICING}],
        observability={"backgroundFollowUp": settings},
    )


def _sample(gw: GatewayHarness, name: str, **labels: str) -> float:
    return gw.registry.get_sample_value(name, labels) or 0.0


def _background_cost(gw: GatewayHarness) -> float:
    return _sample(
        gw,
        "modelgate_cost_usd_total",
        model="gpt-4o",
        deployment="a",
        key="test",
        tenant="_none",
        end_user="_none",
        estimated="false",
        operation="background",
        tier="default",
    )


def _counted(gw: GatewayHarness, status: str, recorded_by: str) -> float:
    return _sample(
        gw,
        "modelgate_background_responses_total",
        model="gpt-4o",
        deployment="a",
        status=status,
        recorded_by=recorded_by,
    )


def _all_counted(gw: GatewayHarness) -> float:
    return sum(
        s.value
        for m in gw.registry.collect()
        if m.name == "modelgate_background_responses"
        for s in m.samples
        if s.name.endswith("_total")
    )


async def _settled(gw: GatewayHarness) -> None:
    """Bounded wait until the gateway follows nothing and its ledger work is done."""
    await eventually(lambda: gw.state.background.following == 0, timeout=10)
    await gw.state.background.idle()


async def test_a_polled_background_response_is_charged_once_when_it_ends(gateway, upstream_a) -> None:
    gw = await gateway(_doc(upstream_a, pollIntervalSeconds=600))  # only the client's polls see the end
    async with gw.client() as client:
        created = await client.responses.create(model="gpt-4o", input="hi", background=True)
        assert created.status == "queued" and created.usage is None
        assert (await client.responses.retrieve(created.id)).status == "queued"
        await gw.state.background.idle()
        assert _background_cost(gw) == 0 and gw.state.background.following == 1
        upstream_a.complete()
        for _ in range(3):  # every poll sees the end; only the first counts it
            done = await client.responses.retrieve(created.id)
            await gw.state.background.idle()
    assert done.status == "completed" and done.usage is not None
    assert _background_cost(gw) == pytest.approx(FULL_COST)
    assert _counted(gw, "completed", "poll") == 1 and _all_counted(gw) == 1
    await _settled(gw)
    # the create itself charged nothing: no estimate of its input
    assert (
        _sample(
            gw,
            "modelgate_tokens_total",
            model="gpt-4o",
            deployment="a",
            key="test",
            tenant="_none",
            end_user="_none",
            type="input",
            estimated="true",
            operation="background",
            tier="default",
        )
        == 0
    )
    await eventually(lambda: any(line["route"] == "background" for line in gw.log_lines()), timeout=5)
    lines = [line for line in gw.log_lines() if line["route"] == "background"]
    assert [(line["usage_source"], line["response_id"], line["output_tokens"]) for line in lines] == [
        ("followed_up", created.id, WORDS)
    ]


async def test_a_stream_retrieve_that_sees_the_end_charges_it(gateway, upstream_a) -> None:
    gw = await gateway(_doc(upstream_a, pollIntervalSeconds=600))
    async with gw.client() as client:
        created = await client.responses.create(model="gpt-4o", input="hi", background=True)
        upstream_a.complete()
        events = [event async for event in await client.responses.retrieve(created.id, stream=True)]
    assert events[-1].type == "response.completed"
    await eventually(lambda: _all_counted(gw) == 1, timeout=5)
    assert _counted(gw, "completed", "poll") == 1
    assert _background_cost(gw) == pytest.approx(FULL_COST)


async def test_a_background_response_nobody_polls_is_followed_up_and_charged(gateway, upstream_a) -> None:
    gw = await gateway(_doc(upstream_a))
    async with gw.client() as client:
        await client.responses.create(model="gpt-4o", input="hi", background=True)
    await eventually(lambda: len([s for s in upstream_a.seen if s.method == "GET"]) >= 2, timeout=5)
    assert _all_counted(gw) == 0  # still running: asked, not charged
    upstream_a.complete()
    await eventually(lambda: _all_counted(gw) == 1, timeout=5)
    assert _counted(gw, "completed", "follow_up") == 1
    assert _background_cost(gw) == pytest.approx(FULL_COST)
    await _settled(gw)
    assert _sample(gw, "modelgate_background_responses_pending") == 0


async def test_a_cancelled_background_response_is_charged_for_what_it_used(gateway, upstream_a) -> None:
    gw = await gateway(_doc(upstream_a, pollIntervalSeconds=600))
    async with gw.client() as client:
        created = await client.responses.create(model="gpt-4o", input="hi", background=True)
        cancelled = await client.responses.cancel(created.id)
    assert cancelled.status == "cancelled"
    await eventually(lambda: _all_counted(gw) == 1, timeout=5)
    assert _counted(gw, "cancelled", "poll") == 1
    assert _background_cost(gw) == pytest.approx((15 * 2.0 + 5 * 0.5 + 2 * 8.0) / 1e6)


async def test_a_failed_background_response_found_by_the_follow_up_is_charged(gateway, upstream_a) -> None:
    gw = await gateway(_doc(upstream_a))
    async with gw.client() as client:
        await client.responses.create(model="gpt-4o", input="hi", background=True)
    upstream_a.complete(status="failed")
    await eventually(lambda: _counted(gw, "failed", "follow_up") == 1, timeout=5)
    assert _background_cost(gw) == pytest.approx(FULL_COST)


async def test_a_background_stream_is_charged_at_its_end_once(gateway, upstream_a) -> None:
    gw = await gateway(_doc(upstream_a))
    async with gw.client() as client:
        events = [
            e async for e in await client.responses.create(model="gpt-4o", input="hi", background=True, stream=True)
        ]
        assert events[-1].type == "response.completed"
        await eventually(lambda: _all_counted(gw) == 1, timeout=5)
        await client.responses.retrieve(events[-1].response.id)
        await gw.state.background.idle()
    await _settled(gw)
    assert _counted(gw, "completed", "create") == 1 and _all_counted(gw) == 1
    assert _background_cost(gw) == pytest.approx(FULL_COST)


async def test_a_response_that_never_ends_expires_at_the_deadline_uncharged(gateway, upstream_a) -> None:
    gw = await gateway(_doc(upstream_a, deadlineSeconds=1))
    async with gw.client() as client:
        await client.responses.create(model="gpt-4o", input="hi", background=True)
    await eventually(lambda: _counted(gw, "expired", "follow_up") == 1, timeout=5)
    assert _background_cost(gw) == 0
    await _settled(gw)
    upstream_a.complete()
    assert _all_counted(gw) == 1


async def test_plain_creates_are_never_followed_up(gateway, upstream_a) -> None:
    gw = await gateway(_doc(upstream_a))
    async with gw.client() as client:
        await client.responses.create(model="gpt-4o", input="hi")
        response = await client.responses.retrieve((await client.responses.create(model="gpt-4o", input="x")).id)
    assert response.status == "completed"
    await gw.state.background.idle()
    assert gw.state.background.following == 0 and _all_counted(gw) == 0


async def test_an_upstream_that_runs_it_at_once_is_charged_from_the_create(gateway) -> None:
    """The mock provider (like a chat-completions upstream) answers background creates finished."""
    doc = config_doc(
        [{"name": "m", "provider": "mock", "model": "m"}],
        [{"name": "gpt-4o", "targets": [{"deployment": "m"}], "pricing": PRICING}],
    )
    gw = await gateway(doc)
    async with gw.client() as client:
        created = await client.responses.create(model="gpt-4o", input="hi", background=True)
    assert created.status == "completed" and created.usage is not None
    await eventually(
        lambda: (
            _sample(
                gw,
                "modelgate_background_responses_total",
                model="gpt-4o",
                deployment="m",
                status="completed",
                recorded_by="create",
            )
            == 1
        ),
        timeout=5,
    )
    await eventually(lambda: gw.state.background.following == 0, timeout=5)
    cost = _sample(
        gw,
        "modelgate_cost_usd_total",
        model="gpt-4o",
        deployment="m",
        key="test",
        tenant="_none",
        end_user="_none",
        estimated="false",
        operation="background",
        tier="default",
    )
    usage = created.usage
    assert cost == pytest.approx((usage.input_tokens * 2.0 + usage.output_tokens * 8.0) / 1e6)
