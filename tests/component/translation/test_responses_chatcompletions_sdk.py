"""The translator between the official SDK and the fake chat upstream, over real sockets.

A minimal relay (not the gateway) does what the executor will do: translate the request, call
the fake's /chat/completions, feed chunks to ChatStreamTranslator and write the frames. The SDK's
``responses.stream()`` helper and ``responses.create()`` must then see a faithful Responses API.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import openai
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from openai.types.responses import FunctionToolParam

from fake_chat_upstream import ChatScript, FakeChatUpstream, ToolCallScript, sse_data
from modelgate_gateway.upstream.translation.responses_chatcompletions import (
    ChatStreamTranslator,
    translate_request,
    translate_response,
)

TOOL: FunctionToolParam = {
    "type": "function",
    "name": "get_weather",
    "parameters": {"type": "object"},
    "strict": False,
}


def relay_app(upstream: FakeChatUpstream) -> web.Application:
    async def create(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        chat = translate_request(body, "upstream-model")
        common = {
            "response_id": "resp_relay",
            "model": body["model"],
            "created_at": int(time.time()),
        }
        async with (
            aiohttp.ClientSession() as session,
            session.post(upstream.base_url + "/chat/completions", json=chat) as upstream_response,
        ):
            if not body.get("stream"):
                result = translate_response(await upstream_response.json(), request=body, **common)
                return web.json_response(result, dumps=lambda v: orjson.dumps(v).decode())
            translator = ChatStreamTranslator(request=body, **common)
            response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
            await response.prepare(request)
            await response.write(translator.start())
            async for chunk in sse_data(upstream_response.content):
                await response.write(translator.feed(chunk))
            await response.write(translator.finish())
            return response

    app = web.Application()
    app.router.add_post("/v1/responses", create)
    return app


@pytest.fixture
async def upstream() -> AsyncIterator[FakeChatUpstream]:
    async with FakeChatUpstream() as fake:
        yield fake


@pytest.fixture
async def client(upstream: FakeChatUpstream) -> AsyncIterator[openai.AsyncOpenAI]:
    server = TestServer(relay_app(upstream), host="127.0.0.1")
    await server.start_server()
    sdk = openai.AsyncOpenAI(base_url=str(server.make_url("/v1")), api_key="k", max_retries=0)
    yield sdk
    await sdk.close()
    await server.close()


async def test_stream_helper_yields_final_text_and_function_calls(
    client: openai.AsyncOpenAI, upstream: FakeChatUpstream
) -> None:
    upstream.script(
        ChatScript(
            text=["It is", " sunny", "."],
            tool_calls=[
                ToolCallScript("get_weather", ['{"city":', '"Paris"}'], "call_1"),
                ToolCallScript("get_weather", ['{"city":', '"Rome"}'], "call_2"),
            ],
        )
    )
    deltas: list[str] = []
    numbers: list[int] = []
    async with client.responses.stream(
        model="public",
        input="weather?",
        tools=[TOOL],
        instructions="Be brief.",
    ) as stream:
        async for event in stream:
            numbers.append(event.sequence_number)
            if event.type == "response.output_text.delta":
                deltas.append(event.delta)
        final = await stream.get_final_response()
    assert numbers == list(range(len(numbers)))
    assert final.output_text == "".join(deltas) == "It is sunny."
    calls = [(o.call_id, o.name, o.arguments) for o in final.output if o.type == "function_call"]
    assert calls == [
        ("call_1", "get_weather", '{"city":"Paris"}'),
        ("call_2", "get_weather", '{"city":"Rome"}'),
    ]
    assert final.usage is not None and final.usage.total_tokens == 30
    sent = upstream.requests[-1]
    assert sent["model"] == "upstream-model"
    assert sent["stream_options"] == {"include_usage": True}
    assert sent["messages"][0] == {"role": "system", "content": "Be brief."}


async def test_non_stream_create_parses_as_response(client: openai.AsyncOpenAI, upstream: FakeChatUpstream) -> None:
    upstream.script(ChatScript(text=["Hi", " there"]))
    response = await client.responses.create(model="public", input="hi", max_output_tokens=50, temperature=0.5)
    assert response.output_text == "Hi there"
    assert response.status == "completed"
    assert upstream.requests[-1]["max_completion_tokens"] == 50
    assert upstream.requests[-1]["temperature"] == 0.5
    assert "stream" not in upstream.requests[-1]


async def test_fake_chunks_parse_with_the_sdk_chat_client(upstream: FakeChatUpstream) -> None:
    sdk = openai.AsyncOpenAI(base_url=upstream.base_url, api_key="k", max_retries=0)
    upstream.script(ChatScript(text=["a", "b"], tool_calls=[ToolCallScript("f", ["{", "}"])]))
    try:
        stream = await sdk.chat.completions.create(
            model="m",
            messages=[{"role": "user", "content": "x"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [chunk async for chunk in stream]
    finally:
        await sdk.close()
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "ab"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-2].choices[0].finish_reason == "tool_calls"
    args: list[str] = []
    for chunk in chunks:
        for call in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            args.append(call.function.arguments if call.function and call.function.arguments else "")
    assert "".join(args) == "{}"
    assert upstream.requests == [
        {
            "model": "m",
            "messages": [{"role": "user", "content": "x"}],
            "stream": True,
            "stream_options": {"include_usage": True},
        }
    ]


@pytest.mark.parametrize(("status", "error"), [(429, openai.RateLimitError), (500, openai.InternalServerError)])
async def test_fake_error_statuses(upstream: FakeChatUpstream, status: int, error: type[Exception]) -> None:
    upstream.script(ChatScript(status=status, retry_after="3"))
    async with aiohttp.ClientSession() as session:
        async with session.post(upstream.base_url + "/chat/completions", json={"model": "m"}) as response:
            assert response.status == status
            assert response.headers.get("Retry-After") == "3"
            payload: dict[str, Any] = await response.json()
    assert payload["error"]["message"] == "fake upstream error"
    sdk = openai.AsyncOpenAI(base_url=upstream.base_url, api_key="k", max_retries=0)
    upstream.script(ChatScript(status=status))
    try:
        with pytest.raises(error):
            await sdk.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    finally:
        await sdk.close()


async def test_fake_hang_is_seen_as_a_disconnect_when_the_client_gives_up(
    upstream: FakeChatUpstream,
) -> None:
    upstream.script(ChatScript(hang=True))
    timeout = aiohttp.ClientTimeout(total=0.3)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        with pytest.raises(asyncio.TimeoutError):
            await session.post(upstream.base_url + "/chat/completions", json={"model": "m"})
    await asyncio.wait_for(upstream.disconnected.wait(), timeout=5)
    assert upstream.disconnects == 1


async def test_fake_drop_mid_stream_ends_without_done(upstream: FakeChatUpstream) -> None:
    upstream.script(ChatScript(text=["a", "b", "c"], drop_after_chunks=2))
    received: list[dict[str, Any]] = []
    async with aiohttp.ClientSession() as session:
        async with session.post(upstream.base_url + "/chat/completions", json={"model": "m", "stream": True}) as r:
            with pytest.raises(aiohttp.ClientPayloadError):
                async for chunk in sse_data(r.content):
                    received.append(chunk)
    assert len(received) == 2
