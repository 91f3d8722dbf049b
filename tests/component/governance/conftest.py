"""Fixtures of the governance component tests: a real redis-server per test, gateways in-process."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from gateway_harness import GatewayHarness, harnesses
from redis_server import redis_server

__all__ = ["gateway", "redis_server"]


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[Callable[[dict[str, Any]], Awaitable[GatewayHarness]]]:
    async with harnesses(tmp_path) as start:
        yield start
