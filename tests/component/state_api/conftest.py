"""Fixtures for the Responses API state tests: one gateway per deployment kind (Responses, mock, chat)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from fake_chat_upstream import FakeChatUpstream
from fake_responses_upstream import FakeResponsesUpstream
from gateway_harness import GatewayHarness, config_doc, deployment, harnesses
from mock_config import JSON_TEXT
from redis_server import redis_server  # noqa: F401  (fixture)

KINDS = ("responses", "mock", "chat")
Start = Callable[..., Awaitable[GatewayHarness]]


@pytest.fixture
async def start_gateway(tmp_path: Path) -> AsyncIterator[Start]:
    async with harnesses(tmp_path) as start:
        yield start


@pytest.fixture
async def responses_upstream() -> AsyncIterator[FakeResponsesUpstream]:
    fake = FakeResponsesUpstream("r", text="Responses upstream answers")
    await fake.start()
    yield fake
    await fake.close()


@pytest.fixture
async def chat_upstream() -> AsyncIterator[FakeChatUpstream]:
    async with FakeChatUpstream() as fake:
        yield fake


def kind_deployment(kind: str, name: str, responses: FakeResponsesUpstream, chat: FakeChatUpstream,
                    **extra: Any) -> dict[str, Any]:
    """A deployment of ``kind``: a fake Responses upstream, the built-in mock, or a fake chat upstream."""
    if kind == "mock":  # its canned text is JSON, so parse() works on it too
        return {"name": name, "provider": "mock", "model": "mock-model", "mock": {"text": JSON_TEXT}, **extra}
    if kind == "chat":
        return deployment(name, chat.base_url, api="chat_completions", provider="vllm", **extra)
    return deployment(name, responses.base_url, **extra)


@pytest.fixture(params=KINDS)
async def kind_gateway(request: pytest.FixtureRequest, start_gateway: Start,
                       responses_upstream: FakeResponsesUpstream, chat_upstream: FakeChatUpstream,
                       redis_server: Any) -> GatewayHarness:  # noqa: F811
    """A gateway whose model ``m`` is served by one deployment of the parametrised kind (state in Redis)."""
    dep = kind_deployment(request.param, "d", responses_upstream, chat_upstream)
    doc = config_doc([dep], [{"name": "m", "targets": [{"deployment": "d"}]}], state={"redisUrl": redis_server.url})
    return await start_gateway(doc)
