"""Rate-limited deployments: other deployments and fallback models first, waiting last.

The gateway used to wait out a 429's ``Retry-After`` and retry the same deployment before it
tried the fallback models, so the attempt budget went to the rate-limited primary and the client
got a 429 that a fallback could have served. Now a 429 defers its deployment and the request
moves on through the model's other deployments and the fallback chain; it waits for a
``Retry-After`` only when nothing else can serve, within ``maxRetryAfterSeconds`` and the
deadline, and otherwise answers 429 with the time the client should come back.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import openai
import pytest

from fake_responses_upstream import Behaviour, FakeResponsesUpstream
from gateway_harness import config_doc, deployment, harnesses
from raw_http_server import eventually

LIMITED = Behaviour(status=429, headers={"Retry-After": "30"})


@pytest.fixture
async def fakes() -> AsyncIterator[dict[str, FakeResponsesUpstream]]:
    upstreams = {name: FakeResponsesUpstream(name, text=f"{name} answers") for name in ("a", "a2", "b")}
    for fake in upstreams.values():
        await fake.start()
    yield upstreams
    for fake in upstreams.values():
        await fake.close()


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator:
    async with harnesses(tmp_path) as start:
        yield start


def _chain(fakes: dict[str, FakeResponsesUpstream], primary: tuple[str, ...] = ("a",), **retry: float) -> dict:
    """gpt-4o served by ``primary``, falling back to gpt-4o-mini served by b."""
    return config_doc([deployment(name, fake.base_url) for name, fake in fakes.items()],
                      [{"name": "gpt-4o", "targets": [{"deployment": n} for n in primary],
                        "fallbacks": ["gpt-4o-mini"], "retry": retry},
                       {"name": "gpt-4o-mini", "targets": [{"deployment": "b"}]}])


async def _path(gw) -> list[tuple[str, str]]:
    """(deployment, outcome) of each attempt of the last request, from its log line."""
    lines: list[dict] = []

    def logged() -> bool:
        lines[:] = gw.log_lines()
        return bool(lines)

    await eventually(logged)
    last = lines[-1]
    return [(a["deployment"], a["outcome"]) for a in last.get("attempt_path", [])] or [(last["deployment"], "success")]


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
async def test_a_rate_limited_model_falls_back_before_waiting(gateway, fakes, stream: bool) -> None:
    fakes["a"].script = [Behaviour(status=429, headers={"Retry-After": "0.5"})]
    gw = await gateway(_chain(fakes))  # maxRetryAfterSeconds 10: the old code waited 0.5 s for a
    async with gw.client() as client:
        raw = await client.responses.with_raw_response.create(model="gpt-4o", input="hi", stream=stream)
        if stream:
            text = [e async for e in raw.parse()][-1].response.output_text
        else:
            text = raw.parse().output_text
    assert text == "b answers"
    assert raw.headers["x-modelgate-deployment"] == "b" and raw.headers["x-modelgate-attempts"] == "2"
    assert await _path(gw) == [("a", "rate_limited"), ("b", "success")]
    assert len(fakes["a"].creates) == 1
    await eventually(lambda: gw.registry.get_sample_value(
        "modelgate_fallbacks_total", {"from_model": "gpt-4o", "to_model": "gpt-4o-mini"}) == 1)


async def test_every_deployment_of_the_model_is_tried_before_the_fallback(gateway, fakes) -> None:
    fakes["a"].script = [Behaviour(status=429, headers={"Retry-After": "1"})]
    fakes["a2"].script = [Behaviour(status=429, headers={"Retry-After": "1"})]
    gw = await gateway(_chain(fakes, primary=("a", "a2")))
    async with gw.client() as client:
        raw = await client.responses.with_raw_response.create(model="gpt-4o", input="hi")
    assert raw.headers["x-modelgate-deployment"] == "b"
    path = await _path(gw)
    assert sorted(path[:2]) == [("a", "rate_limited"), ("a2", "rate_limited")] and path[2] == ("b", "success")


async def test_new_requests_skip_a_deferred_model_and_go_straight_to_the_fallback(gateway, fakes) -> None:
    fakes["a"].script = [LIMITED]
    gw = await gateway(_chain(fakes))
    async with gw.client() as client:
        await client.responses.create(model="gpt-4o", input="first")
        raw = await client.responses.with_raw_response.create(model="gpt-4o", input="second")
    assert raw.headers["x-modelgate-deployment"] == "b" and raw.headers["x-modelgate-attempts"] == "1"
    assert len(fakes["a"].creates) == 1  # not asked again while its Retry-After runs


async def test_it_waits_for_a_retry_after_only_when_nothing_else_can_serve(gateway, fakes) -> None:
    fakes["a"].script = [Behaviour(status=429, headers={"Retry-After": "0.3"})]
    fakes["b"].script = [Behaviour(status=500)]
    gw = await gateway(_chain(fakes))
    started = time.monotonic()
    async with gw.client() as client:
        raw = await client.responses.with_raw_response.create(model="gpt-4o", input="hi")
    assert time.monotonic() - started >= 0.25  # it did wait for a's Retry-After
    assert raw.headers["x-modelgate-deployment"] == "a" and raw.headers["x-modelgate-attempts"] == "3"
    assert await _path(gw) == [("a", "rate_limited"), ("b", "server_error"), ("a", "success")]


async def test_a_retry_after_beyond_max_wait_is_a_429_at_once(gateway, fakes) -> None:
    fakes["a"].script = [LIMITED]
    fakes["b"].script = [Behaviour(status=500)]
    gw = await gateway(_chain(fakes, maxRetryAfterSeconds=10))
    async with gw.client() as client:
        with pytest.raises(openai.RateLimitError) as caught:
            await client.responses.create(model="gpt-4o", input="hi")
    assert 29 <= int(caught.value.response.headers["retry-after"]) <= 30  # a is back then
    message = caught.value.body["message"]
    assert "a: rate limited" in message and "b: returned HTTP 500" in message
    assert await _path(gw) == [("a", "rate_limited"), ("b", "server_error")]


async def test_the_deadline_bounds_the_wait(gateway, fakes) -> None:
    fakes["a"].script = [Behaviour(status=429, headers={"Retry-After": "3"})]
    fakes["b"].script = [Behaviour(status=500)]
    gw = await gateway(_chain(fakes, maxRetryAfterSeconds=10, totalTimeoutSeconds=2))
    started = time.monotonic()
    async with gw.client() as client:
        with pytest.raises(openai.RateLimitError):
            await client.responses.create(model="gpt-4o", input="hi")
    assert time.monotonic() - started < 2  # answered, not slept past the deadline
    assert len(fakes["a"].creates) == 1


async def test_a_model_whose_only_deployment_is_deferred_answers_429_without_sending(gateway, fakes) -> None:
    fakes["a"].script = [LIMITED]
    doc = config_doc([deployment("a", fakes["a"].base_url)], [{"name": "solo", "targets": [{"deployment": "a"}]}])
    gw = await gateway(doc)
    async with gw.client() as client:
        with pytest.raises(openai.RateLimitError):
            await client.responses.create(model="solo", input="first")
        with pytest.raises(openai.RateLimitError) as caught:
            await client.responses.create(model="solo", input="second")
    assert len(fakes["a"].creates) == 1  # the second request was not sent into a known 429
    assert 1 <= int(caught.value.response.headers["retry-after"]) <= 30
    assert "a: rate limited, not sent" in caught.value.body["message"]


async def test_max_attempts_counts_every_request_sent(gateway, fakes) -> None:
    """Documented interplay: each deployment tried costs an attempt, 429s included."""
    fakes["a"].script = [LIMITED]
    fakes["a2"].script = [LIMITED]
    gw = await gateway(_chain(fakes, primary=("a", "a2"), maxAttempts=2))
    async with gw.client() as client:
        with pytest.raises(openai.RateLimitError):
            await client.responses.create(model="gpt-4o", input="hi")
    assert fakes["b"].creates == []
    async with gw.client() as client:  # both deferred now: the next request needs no attempt for them
        raw = await client.responses.with_raw_response.create(model="gpt-4o", input="hi")
    assert raw.headers["x-modelgate-deployment"] == "b" and raw.headers["x-modelgate-attempts"] == "1"


@pytest.mark.parametrize(("retry_after", "served"), [("0.2", True), ("30", False)])
async def test_a_pinned_request_waits_for_its_deployment_and_never_falls_back(
        gateway, fakes, retry_after: str, served: bool) -> None:
    gw = await gateway(_chain(fakes))
    async with gw.client() as client:
        first = await client.responses.create(model="gpt-4o", input="hi")
        fakes["a"].script = [Behaviour(status=429, headers={"Retry-After": retry_after})]
        if served:
            raw = await client.responses.with_raw_response.create(
                model="gpt-4o", input="again", previous_response_id=first.id)
            assert raw.headers["x-modelgate-deployment"] == "a" and raw.headers["x-modelgate-attempts"] == "2"
        else:
            with pytest.raises(openai.RateLimitError) as caught:
                await client.responses.create(model="gpt-4o", input="again", previous_response_id=first.id)
            assert 29 <= int(caught.value.response.headers["retry-after"]) <= 30
    assert fakes["b"].creates == []  # the state lives at a: no fallback can continue it
