"""Create calls through the official SDK, streaming and not, against a faithful fake upstream."""

from __future__ import annotations

import asyncio

from fake_responses_upstream import FakeResponsesUpstream
from gateway_harness import config_doc, deployment
from http_proxy import HttpProxy


def _single(upstream: FakeResponsesUpstream) -> dict:
    return config_doc([deployment("a", upstream.base_url)], [{"name": "gpt-4o", "targets": [{"deployment": "a"}]}])


async def test_non_streaming_round_trip_maps_model_and_signs_id(gateway, upstream_a) -> None:
    gw = await gateway(_single(upstream_a))
    async with gw.client() as client:
        raw = await client.responses.with_raw_response.create(model="gpt-4o", input="hi")
        response = raw.parse()
    assert response.output_text == "Alpha answers with seven short words"
    assert response.id.startswith("resp_") and response.id != "resp_a000001"
    assert upstream_a.creates[-1].body["model"] == "up-a"
    assert upstream_a.creates[-1].headers["Authorization"] == "Bearer sk-upstream-secret-value"
    assert raw.headers["x-modelgate-deployment"] == "a"
    assert raw.headers["x-modelgate-attempts"] == "1"
    assert raw.headers["x-request-id"].startswith("req_")
    assert upstream_a.creates[-1].headers["X-Request-Id"] == raw.headers["x-request-id"]
    assert response.usage is not None and response.usage.output_tokens == 6


async def test_streaming_events_parse_in_order_and_final_text_matches(gateway, upstream_a) -> None:
    gw = await gateway(_single(upstream_a))
    async with gw.client() as client:
        stream = await client.responses.create(model="gpt-4o", input="hi", stream=True)
        events = [event async for event in stream]
    types = [e.type for e in events]
    assert types[0] == "response.created" and types[-1] == "response.completed"
    sequence = [e.sequence_number for e in events]
    assert sequence == sorted(sequence) and len(set(sequence)) == len(sequence)
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert deltas == events[-1].response.output_text == "Alpha answers with seven short words"
    ids = {
        e.response.id for e in events if e.type in ("response.created", "response.in_progress", "response.completed")
    }
    assert len(ids) == 1 and next(iter(ids)).startswith("resp_") and "a000" not in next(iter(ids))


async def test_stream_helper_final_response_equals_deltas(gateway, upstream_a) -> None:
    gw = await gateway(_single(upstream_a))
    async with gw.client() as client:
        async with client.responses.stream(model="gpt-4o", input="hi") as stream:
            deltas = [e.delta async for e in stream if e.type == "response.output_text.delta"]
            final = await stream.get_final_response()
    assert "".join(deltas) == final.output_text


async def test_request_fields_reach_upstream_unchanged(gateway, upstream_a) -> None:
    gw = await gateway(_single(upstream_a))
    tools = [
        {
            "type": "function",
            "name": "lookup",
            "description": "d",
            "strict": True,
            "parameters": {
                "type": "object",
                "properties": {"q": {"type": "string"}},
                "required": ["q"],
                "additionalProperties": False,
            },
        }
    ]
    inputs = [{"role": "user", "content": [{"type": "input_text", "text": "héllo ✓"}]}]
    async with gw.client() as client:
        await client.responses.create(
            model="gpt-4o",
            input=inputs,
            instructions="Be brief.",
            tools=tools,
            metadata={"team": "x"},
            temperature=0.25,
            user="user-42",
        )
    sent = upstream_a.creates[-1].body
    assert sent["model"] == "up-a"
    assert sent["input"] == inputs and sent["instructions"] == "Be brief." and sent["tools"] == tools
    assert sent["metadata"] == {"team": "x"} and sent["temperature"] == 0.25 and sent["user"] == "user-42"


async def test_client_request_id_is_kept_and_end_user_header_is_attributed(gateway, upstream_a) -> None:
    gw = await gateway(_single(upstream_a))
    async with gw.client() as client:
        raw = await client.responses.with_raw_response.create(
            model="gpt-4o", input="hi", extra_headers={"X-Request-Id": "trace-123", "X-Modelgate-End-User": "erin"}
        )
    assert raw.headers["x-request-id"] == "trace-123"
    assert upstream_a.creates[-1].headers["X-Client-Request-Id"] == "trace-123"
    cost = gw.registry.get_sample_value(
        "modelgate_cost_usd_total",
        {
            "model": "gpt-4o",
            "deployment": "a",
            "key": "test",
            "tenant": "_none",
            "end_user": "erin",
            "estimated": "false",
            "operation": "create",
            "tier": "default",
        },
    )
    assert cost is not None


async def test_answers_of_several_megabytes_pass_whole(gateway, upstream_a) -> None:
    """Image-sized answers (base64 outputs run to megabytes): read past the client's 1 MiB
    read-pause threshold, non-streaming and streamed, with the id still rewritten."""
    upstream_a.text = " ".join(["w" * 1_000_000] * 3)  # 3 MB of output text in three deltas
    gw = await gateway(_single(upstream_a))
    async with gw.client() as client, asyncio.timeout(20):  # a stalled read would wait for the 600 s deadline
        response = await client.responses.create(model="gpt-4o", input="hi")
        assert response.output_text == upstream_a.text and "a000" not in response.id
        stream = await client.responses.create(model="gpt-4o", input="hi", stream=True)
        events = [event async for event in stream]
    assert events[-1].type == "response.completed"
    assert events[-1].response.output_text == upstream_a.text


async def test_upstream_calls_go_through_the_egress_proxy_named_by_the_environment(
    gateway, upstream_a, monkeypatch
) -> None:
    async with HttpProxy() as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.setenv("NO_PROXY", "")
        gw = await gateway(_single(upstream_a))  # the config is compiled (and the proxy chosen) now
        monkeypatch.delenv("HTTP_PROXY")  # the SDK's own HTTP client would honour it too
        async with gw.client() as client:
            response = await client.responses.create(model="gpt-4o", input="hi")
            stream = await client.responses.create(model="gpt-4o", input="hi", stream=True)
            events = [event async for event in stream]
    assert response.output_text == events[-1].response.output_text == "Alpha answers with seven short words"
    assert len(proxy.heads) == 1  # one keep-alive connection through the proxy for both calls
    assert proxy.heads[0].startswith(f"POST {upstream_a.base_url}/responses HTTP/1.1".encode())
    assert len(upstream_a.creates) == 2
