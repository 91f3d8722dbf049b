"""OTLP traces of requests into a real OTLP/HTTP receiver on loopback: spans, GenAI attributes, no prompt text."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from fake_responses_upstream import Behaviour
from gateway_harness import config_doc, deployment
from otlp_receiver import OtlpReceiver
from raw_http_server import eventually

SERVER, CLIENT = 2, 3  # OTLP span kinds
SECRET_PROMPT = "my-secret-prompt-text-never-exported"


@pytest.fixture
async def receiver() -> AsyncIterator[OtlpReceiver]:
    found = OtlpReceiver()
    await found.start()
    yield found
    await found.close()


def _doc(upstream_a, upstream_b, receiver: OtlpReceiver | None) -> dict:
    observability = (
        {
            "tracing": {
                "enabled": True,
                "endpoint": receiver.url,
                "batchDelaySeconds": 0.05,
                "serviceName": "gw-under-test",
            }
        }
        if receiver
        else {}
    )
    return config_doc(
        [deployment("a", upstream_a.base_url), deployment("b", upstream_b.base_url)],
        [
            {
                "name": "gpt-4o",
                "targets": [{"deployment": "a"}],
                "fallbacks": ["backup"],
                "pricing": {"inputUsdPerMillionTokens": 2.0, "outputUsdPerMillionTokens": 8.0},
            },
            {"name": "backup", "targets": [{"deployment": "b"}]},
        ],
        observability=observability,
    )


async def test_a_request_is_one_server_span_with_a_client_span_per_attempt(
    gateway, upstream_a, upstream_b, receiver
) -> None:
    upstream_a.script = [Behaviour(status=500)]  # first attempt fails, the fallback serves
    gw = await gateway(_doc(upstream_a, upstream_b, receiver))
    async with gw.client() as client:
        response = await client.responses.create(model="gpt-4o", input=SECRET_PROMPT, user="erin")
    await eventually(lambda: len(receiver.spans) >= 3, timeout=10)
    [server] = [s for s in receiver.spans if s.kind == SERVER]
    attempts = sorted((s for s in receiver.spans if s.kind == CLIENT), key=lambda s: s.start_ns)
    assert server.resource["service.name"] == "gw-under-test"
    assert server.name == "chat backup"
    attrs = server.attributes
    assert attrs["gen_ai.operation.name"] == "chat" and attrs["gen_ai.request.model"] == "gpt-4o"
    assert attrs["gen_ai.response.id"] == response.id
    assert attrs["gen_ai.usage.input_tokens"] == 20 and attrs["gen_ai.usage.output_tokens"] == 7  # Bravo's seven words
    assert attrs["gen_ai.usage.cache_read.input_tokens"] == 5
    assert attrs["modelgate.deployment"] == "b" and attrs["http.response.status_code"] == 200
    assert attrs["modelgate.operation"] == "create" and attrs["modelgate.attempts"] == 2
    assert [a.attributes["modelgate.deployment"] for a in attempts] == ["a", "b"]
    assert attempts[0].attributes["error.type"] == "server_error" and attempts[0].status_code == 2  # ERROR
    assert attempts[1].attributes["gen_ai.provider.name"] == "openai-compatible"
    assert attempts[1].attributes["server.address"] == "127.0.0.1"
    for span in attempts:
        assert span.trace_id == server.trace_id and span.parent_span_id == server.span_id
        assert server.start_ns <= span.start_ns <= span.end_ns <= server.end_ns
    assert all(SECRET_PROMPT.encode() not in body for body in receiver.raw)
    assert all("erin" not in str(s.attributes.values()) for s in receiver.spans)  # nor the end user


async def test_a_stream_span_carries_its_usage_and_tier(gateway, upstream_a, upstream_b, receiver) -> None:
    upstream_a.script = [Behaviour(service_tier="flex")]
    gw = await gateway(_doc(upstream_a, upstream_b, receiver))
    async with gw.client() as client:
        events = [e async for e in await client.responses.create(model="gpt-4o", input="hi", stream=True)]
    assert events[-1].type == "response.completed"
    await eventually(lambda: any(s.kind == SERVER for s in receiver.spans), timeout=10)
    [server] = [s for s in receiver.spans if s.kind == SERVER]
    assert server.attributes["openai.response.service_tier"] == "flex"
    assert server.attributes["modelgate.stream"] is True
    assert server.attributes["gen_ai.usage.output_tokens"] == 6


async def test_tracing_is_off_by_default_and_can_be_turned_off(gateway, upstream_a, upstream_b, receiver) -> None:
    gw = await gateway(_doc(upstream_a, upstream_b, None))
    assert gw.observer._tracer is None
    off = _doc(upstream_a, upstream_b, receiver)
    off["spec"]["observability"]["tracing"]["enabled"] = False
    old = gw.state.current().checksum
    gw.write(off)
    await gw.wait_for_checksum_change(old)
    async with gw.client() as client:
        await client.responses.create(model="gpt-4o", input="hi")
    assert gw.observer._tracer is None and receiver.spans == []
