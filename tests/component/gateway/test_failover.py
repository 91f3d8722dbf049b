"""Failover before the first byte: other deployments, then fallback models; cooldown; limits."""

from __future__ import annotations

import asyncio
import socket
import time

import openai
import pytest

from fake_responses_upstream import Behaviour
from gateway_harness import config_doc, deployment


def _two(upstream_a, upstream_b, **model_extra) -> dict:
    return config_doc(
        [
            deployment("a", upstream_a.base_url, timeouts={"firstByteSeconds": 0.5}),
            deployment("b", upstream_b.base_url),
        ],
        [
            {
                "name": "gpt-4o",
                "strategy": "weighted-random",
                "targets": [{"deployment": "a", "weight": 1}, {"deployment": "b", "weight": 0}],
                **model_extra,
            }
        ],
    )


def _with_fallback_model(upstream_a, upstream_b) -> dict:
    """gpt-4o served by a only, falling back to the model gpt-4o-mini served by b."""
    return config_doc(
        [deployment("a", upstream_a.base_url), deployment("b", upstream_b.base_url)],
        [
            {"name": "gpt-4o", "targets": [{"deployment": "a"}], "fallbacks": ["gpt-4o-mini"]},
            {"name": "gpt-4o-mini", "targets": [{"deployment": "b"}]},
        ],
    )


def _dead_url() -> str:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens here any more: connection refused
    return f"http://127.0.0.1:{port}/v1"


@pytest.mark.parametrize(
    "behaviour",
    [
        Behaviour(status=500),
        Behaviour(status=503),
        Behaviour(status=429, headers={"Retry-After": "30"}),
        Behaviour(hang=True),
        Behaviour(status=401),
    ],
    ids=["500", "503", "429", "hang", "401"],
)
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
async def test_failure_before_first_byte_fails_over_to_the_other_deployment(
    gateway, upstream_a, upstream_b, behaviour, stream
) -> None:
    upstream_a.script = [behaviour]
    gw = await gateway(_two(upstream_a, upstream_b))
    async with gw.client() as client:
        raw = await client.responses.with_raw_response.create(model="gpt-4o", input="hi", stream=stream)
        if stream:
            events = [e async for e in raw.parse()]
            text = events[-1].response.output_text
        else:
            text = raw.parse().output_text
    assert text == "Bravo replies with a different sentence here"
    assert raw.headers["x-modelgate-deployment"] == "b"
    assert raw.headers["x-modelgate-attempts"] == "2"
    assert len(upstream_a.creates) == 1 and len(upstream_b.creates) == 1


async def test_connection_refused_fails_over(gateway, upstream_b) -> None:
    doc = config_doc(
        [deployment("dead", _dead_url()), deployment("b", upstream_b.base_url)],
        [{"name": "gpt-4o", "targets": [{"deployment": "dead", "weight": 1}, {"deployment": "b", "weight": 0}]}],
    )
    gw = await gateway(doc)
    async with gw.client() as client:
        raw = await client.responses.with_raw_response.create(model="gpt-4o", input="hi")
    assert raw.headers["x-modelgate-deployment"] == "b"


async def test_fallback_model_serves_when_every_deployment_of_the_model_fails(gateway, upstream_a, upstream_b) -> None:
    upstream_a.script = [Behaviour(status=500)]
    doc = _with_fallback_model(upstream_a, upstream_b)
    gw = await gateway(doc)
    async with gw.client() as client:
        raw = await client.responses.with_raw_response.create(model="gpt-4o", input="hi")
    assert raw.headers["x-modelgate-deployment"] == "b"
    assert upstream_b.creates[-1].body["model"] == "up-b"
    fallbacks = gw.registry.get_sample_value(
        "modelgate_fallbacks_total", {"from_model": "gpt-4o", "to_model": "gpt-4o-mini"}
    )
    assert fallbacks == 1


async def test_client_error_is_passed_through_without_retry(gateway, upstream_a, upstream_b) -> None:
    body = {
        "error": {
            "message": "Unsupported parameter: 'foo'.",
            "type": "invalid_request_error",
            "param": "foo",
            "code": "unsupported_parameter",
        }
    }
    upstream_a.script = [Behaviour(status=400, error_body=body)]
    gw = await gateway(_two(upstream_a, upstream_b))
    async with gw.client() as client:
        with pytest.raises(openai.BadRequestError) as caught:
            await client.responses.create(model="gpt-4o", input="hi")
    assert caught.value.body == body["error"]
    assert upstream_b.creates == []


@pytest.mark.parametrize(
    ("behaviour", "status", "code"),
    [
        (Behaviour(status=500), 502, "upstream_error"),
        (Behaviour(hang=True), 504, "upstream_timeout"),
        (Behaviour(status=429, headers={"Retry-After": "30"}), 429, "rate_limit_exceeded"),
    ],
)
async def test_all_attempts_failing_returns_an_error_naming_each_failure(
    gateway, upstream_a, upstream_b, behaviour, status, code
) -> None:
    upstream_a.script = [behaviour]
    upstream_b.script = [behaviour]
    doc = _two(upstream_a, upstream_b)
    doc["spec"]["deployments"][1]["timeouts"] = {"firstByteSeconds": 0.5}
    gw = await gateway(doc)
    async with gw.client() as client:
        with pytest.raises(openai.APIStatusError) as caught:
            await client.responses.create(model="gpt-4o", input="hi")
    assert caught.value.status_code == status
    error = caught.value.body
    assert error["code"] == code
    assert "a:" in error["message"] and "b:" in error["message"]


async def test_retry_after_is_honoured_when_no_other_deployment_is_left(gateway, upstream_a) -> None:
    upstream_a.script = [Behaviour(status=429, headers={"Retry-After": "0.2"})]
    doc = config_doc(
        [deployment("a", upstream_a.base_url)],
        [{"name": "gpt-4o", "targets": [{"deployment": "a"}], "retry": {"maxAttempts": 3, "maxRetryAfterSeconds": 1}}],
    )
    gw = await gateway(doc)
    async with gw.client() as client:
        raw = await client.responses.with_raw_response.create(model="gpt-4o", input="hi")
    assert raw.headers["x-modelgate-attempts"] == "2"
    assert len(upstream_a.creates) == 2


async def test_max_attempts_bounds_the_retries(gateway, upstream_a, upstream_b) -> None:
    upstream_a.script = [Behaviour(status=500)]
    upstream_b.script = [Behaviour(status=500)]
    doc = _two(upstream_a, upstream_b, retry={"maxAttempts": 1})
    gw = await gateway(doc)
    async with gw.client() as client:
        with pytest.raises(openai.APIStatusError):
            await client.responses.create(model="gpt-4o", input="hi")
    assert len(upstream_a.creates) + len(upstream_b.creates) == 1


async def test_failing_deployment_is_cooled_down_then_probed_again(gateway, upstream_a, upstream_b) -> None:
    upstream_a.script = [Behaviour(status=500), Behaviour(status=500)]
    doc = _two(upstream_a, upstream_b, cooldown={"consecutiveFailures": 2, "durationSeconds": 0.3})
    doc["spec"]["models"][0]["targets"][1]["weight"] = 0
    gw = await gateway(doc)
    async with gw.client() as client:
        for _ in range(2):  # two failures on a -> a cools down
            await client.responses.create(model="gpt-4o", input="hi")
        assert gw.state.board.cooling_down("a", time.monotonic())
        raw = await client.responses.with_raw_response.create(model="gpt-4o", input="hi")
        assert raw.headers["x-modelgate-deployment"] == "b" and raw.headers["x-modelgate-attempts"] == "1"
        assert len(upstream_a.creates) == 2
        gw.state.board.get("a").cooldown_until = 0.01  # cooldown over: next request probes a
        raw = await client.responses.with_raw_response.create(model="gpt-4o", input="hi")
    assert raw.headers["x-modelgate-deployment"] == "a"
    assert not gw.state.board.cooling_down("a", time.monotonic())
    cooldowns = gw.registry.get_sample_value("modelgate_cooldowns_total", {"deployment": "a"})
    assert cooldowns == 1


async def test_streamed_request_falls_back_to_the_fallback_model(gateway, upstream_a, upstream_b) -> None:
    upstream_a.script = [Behaviour(status=503)]
    doc = _with_fallback_model(upstream_a, upstream_b)
    gw = await gateway(doc)
    async with gw.client() as client:
        raw = await client.responses.with_raw_response.create(model="gpt-4o", input="hi", stream=True)
        events = [e async for e in raw.parse()]
    assert raw.headers["x-modelgate-deployment"] == "b"
    assert events[-1].type == "response.completed"
    assert events[-1].response.output_text == "Bravo replies with a different sentence here"


async def test_total_deadline_bounds_the_whole_request(gateway, upstream_a, upstream_b) -> None:
    upstream_a.script = [Behaviour(hang=True)]
    upstream_b.script = [Behaviour(hang=True)]
    doc = _two(upstream_a, upstream_b, retry={"totalTimeoutSeconds": 0.4, "maxAttempts": 5})
    doc["spec"]["deployments"][0]["timeouts"] = {"firstByteSeconds": 30}
    doc["spec"]["deployments"][1]["timeouts"] = {"firstByteSeconds": 30}
    gw = await gateway(doc)
    started = time.monotonic()
    async with gw.client() as client:
        with pytest.raises(openai.APIStatusError) as caught:
            await client.responses.create(model="gpt-4o", input="hi")
    assert caught.value.status_code == 504
    assert time.monotonic() - started < 3  # not the 30 s first-byte timeout of either deployment


async def test_every_deployment_at_capacity_is_a_503(gateway, upstream_a) -> None:
    upstream_a.script = [Behaviour(token_delay=0.05)]
    doc = config_doc(
        [deployment("a", upstream_a.base_url, maxConcurrentRequests=1)],
        [{"name": "gpt-4o", "targets": [{"deployment": "a"}]}],
    )
    gw = await gateway(doc)
    async with gw.client() as client:
        stream = await client.responses.create(model="gpt-4o", input="slow", stream=True)
        assert (await anext(aiter(stream))).type == "response.created"
        with pytest.raises(openai.APIStatusError) as caught:
            await client.responses.create(model="gpt-4o", input="no room")
        _ = [e async for e in stream]
    assert caught.value.status_code == 503 and caught.value.body["code"] == "no_capacity"


async def test_a_probe_abandoned_by_its_client_does_not_leave_the_deployment_ejected(
    gateway, upstream_a, upstream_b
) -> None:
    import aiohttp

    from gateway_harness import API_KEY

    doc = _two(upstream_a, upstream_b, cooldown={"consecutiveFailures": 1, "durationSeconds": 30})
    gw = await gateway(doc)
    board = gw.state.board
    board.record_failure("a", time.monotonic(), threshold=1, cooldown_seconds=30)
    board.get("a").cooldown_until = 0.01  # cooldown over: the next request is a's probe
    upstream_a.script = [Behaviour(hang=True)]
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
        assert board.get("a").probing
        task.cancel()  # the probe's client leaves before any verdict
    await asyncio.wait_for(upstream_a.cancelled.wait(), 2)
    async with gw.client() as client:
        raw = await client.responses.with_raw_response.create(model="gpt-4o", input="hi")
    assert raw.headers["x-modelgate-deployment"] == "a"  # probed again, and healthy


async def test_retrieving_a_response_does_not_count_its_tokens_again(gateway, upstream_a, upstream_b) -> None:
    gw = await gateway(_two(upstream_a, upstream_b))
    labels = {
        "model": "gpt-4o",
        "deployment": "a",
        "key": "test",
        "tenant": "_none",
        "end_user": "_none",
        "type": "output",
        "estimated": "false",
        "operation": "create",
        "tier": "default",
    }
    async with gw.client() as client:
        created = await client.responses.create(model="gpt-4o", input="hi")
        await asyncio.sleep(0)  # accounting runs on the loop's next turn
        before = gw.registry.get_sample_value("modelgate_tokens_total", labels)
        await client.responses.retrieve(created.id)
        await client.responses.cancel(created.id)
        await asyncio.sleep(0)
    assert before == 6
    assert gw.registry.get_sample_value("modelgate_tokens_total", labels) == before
