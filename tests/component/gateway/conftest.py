"""Fixtures for gateway component tests: fake upstreams and an in-process gateway."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from fake_responses_upstream import FakeResponsesUpstream
from gateway_harness import GatewayHarness


@pytest.fixture
async def upstream_a() -> AsyncIterator[FakeResponsesUpstream]:
    fake = FakeResponsesUpstream("a", text="Alpha answers with seven short words")
    await fake.start()
    yield fake
    await fake.close()


@pytest.fixture
async def upstream_b() -> AsyncIterator[FakeResponsesUpstream]:
    fake = FakeResponsesUpstream("b", text="Bravo replies with a different sentence here")
    await fake.start()
    yield fake
    await fake.close()


GatewayFactory = Callable[[dict[str, Any]], Awaitable[GatewayHarness]]


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[GatewayFactory]:
    started: list[GatewayHarness] = []

    async def start(doc: dict[str, Any]) -> GatewayHarness:
        directory = tmp_path / f"gw{len(started)}"
        directory.mkdir()
        harness = GatewayHarness(directory, doc)
        await harness.start()
        started.append(harness)
        return harness

    yield start
    for harness in started:
        await harness.close()
