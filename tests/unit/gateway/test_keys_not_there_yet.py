"""A valid config whose keys have not reached the secret store yet waits instead of failing.

The config and the secret store reach the gateway separately (two watches, two mounted volumes),
so a key may arrive a moment after the config that needs it: the reloader keeps the last good
config and applies the new one when the key arrives, counting nothing as rejected; only a key
still missing after the source's grace period makes the document count as rejected.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from modelgate_gateway.app import make_state
from modelgate_gateway.observability.observer import GatewayObserver
from modelgate_gateway.reloading import Reloader
from modelgate_gateway.sources.base import ConfigSnapshot


class Source:
    def __init__(self) -> None:
        self.queue: asyncio.Queue[ConfigSnapshot] = asyncio.Queue()

    async def snapshots(self) -> AsyncIterator[ConfigSnapshot]:
        while True:
            yield await self.queue.get()

    async def report_applied(self, checksum: str) -> None:
        return None

    def wake(self) -> None:
        return None


def _doc(*models: str) -> bytes:
    deployments = [{"name": m, "provider": "openai", "baseUrl": "https://api.openai.com/v1", "model": m,
                    "credentials": {"secretKey": f"key-{m}"}} for m in models]
    return json.dumps({"apiVersion": "config.modelgate.dev/v1alpha1", "kind": "GatewayConfig",
                       "spec": {"auth": {"allowUnauthenticated": True}, "deployments": deployments,
                                "models": [{"name": m, "targets": [{"deployment": m}]} for m in models]}}).encode()


def _snap(document: bytes, keys: list[str], grace: float) -> ConfigSnapshot:
    return ConfigSnapshot(document=document, fmt="json", origin="test",
                          secrets={k: b"sk-" + k.encode() for k in keys}, keys_grace_seconds=grace)


class Gateway:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.observer = GatewayObserver(self.registry)
        self.state = make_state(self.observer)
        self.source = Source()
        self.reloader = Reloader(self.state, self.source, self.observer)

    def count(self, result: str) -> float:
        return self.registry.get_sample_value("modelgate_config_reloads_total", {"result": result}) or 0.0

    def models(self) -> list[str]:
        return sorted(self.state.runtime.models) if self.state.runtime else []

    async def until(self, predicate: Any, timeout: float = 5.0) -> None:
        async def poll() -> None:
            while not predicate():
                await asyncio.sleep(0.005)
        await asyncio.wait_for(poll(), timeout)


@pytest.fixture
async def gateway() -> AsyncIterator[Gateway]:
    gw = Gateway()
    task = asyncio.create_task(gw.reloader.run())
    yield gw
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await gw.observer.close()


async def test_config_waits_for_its_key_and_nothing_counts_as_rejected(
        gateway: Gateway, caplog: pytest.LogCaptureFixture) -> None:
    gateway.source.queue.put_nowait(_snap(_doc("a"), ["key-a"], 30))
    await gateway.until(lambda: gateway.models() == ["a"])
    # The config naming key-b arrives before the Secret holding it.
    gateway.source.queue.put_nowait(_snap(_doc("a", "b"), ["key-a"], 30))
    await gateway.until(lambda: "does not hold yet: 'key-b'" in caplog.text)
    assert gateway.models() == ["a"] and gateway.count("failure") == 0
    assert gateway.registry.get_sample_value("modelgate_config_last_reload_successful") == 1
    gateway.source.queue.put_nowait(_snap(_doc("a", "b"), ["key-a", "key-b"], 30))
    await gateway.until(lambda: gateway.models() == ["a", "b"])
    assert gateway.count("failure") == 0 and gateway.count("success") == 2
    assert "rejected config" not in caplog.text


async def test_a_key_still_missing_after_the_grace_period_is_a_rejection(
        gateway: Gateway, caplog: pytest.LogCaptureFixture) -> None:
    gateway.source.queue.put_nowait(_snap(_doc("a"), ["key-a"], 30))
    await gateway.until(lambda: gateway.models() == ["a"])
    gateway.source.queue.put_nowait(_snap(_doc("a", "b"), ["key-a"], 0.2))
    # Another change of the store (not bringing key-b) keeps the same deadline.
    await asyncio.sleep(0.1)
    gateway.source.queue.put_nowait(_snap(_doc("a", "b"), ["key-a", "other"], 0.2))
    await gateway.until(lambda: gateway.count("failure") == 1, timeout=0.6)
    assert gateway.models() == ["a"]
    assert "key 'key-b' is not in the gateway's secret store (waited 0s for the keys)" in caplog.text
    assert gateway.registry.get_sample_value("modelgate_config_last_reload_successful") == 0


async def test_without_a_grace_period_a_missing_key_is_rejected_at_once(gateway: Gateway) -> None:
    gateway.source.queue.put_nowait(_snap(_doc("a"), [], 0))
    await gateway.until(lambda: gateway.count("failure") == 1)
    assert gateway.models() == []


async def test_a_newer_document_replaces_the_one_waiting(gateway: Gateway) -> None:
    gateway.source.queue.put_nowait(_snap(_doc("a", "b"), ["key-a"], 0.2))
    gateway.source.queue.put_nowait(_snap(_doc("a"), ["key-a"], 0.2))
    await gateway.until(lambda: gateway.models() == ["a"])
    await asyncio.sleep(0.3)  # past the first document's deadline: it was dropped, not rejected
    assert gateway.count("failure") == 0
