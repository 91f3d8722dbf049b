"""The real gateway app in-process, following its config through the Kubernetes API.

Like ``gateway_harness.GatewayHarness`` but fed by :class:`KubeSource` (kmock's emulator or a
real API server) instead of a file, with the real observer on a fresh registry, so tests can
count accepted and rejected documents the way an operator's alert would
(``modelgate_config_reloads_total``).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from typing import Any

from aiohttp.test_utils import TestServer
from openai import AsyncOpenAI
from prometheus_client import CollectorRegistry

from modelgate_gateway.app import RELOADER, make_app, make_state
from modelgate_gateway.appstate import GatewayState
from modelgate_gateway.observability.observer import GatewayObserver
from modelgate_gateway.sources.base import ConfigSource
from modelgate_gateway.sources.kube import WatchTiming

API_KEY = "sk-test-kube-gateway"
BASE_CONFIG = (
    "apiVersion: config.modelgate.dev/v1alpha1\n"
    "kind: GatewayConfig\n"
    "spec:\n"
    "  auth:\n"
    f"    keys: [{{name: test, sha256: {hashlib.sha256(API_KEY.encode()).hexdigest()}}}]\n"
)
"""An operator base config whose gateway accepts :data:`API_KEY`."""
FAST_WATCH = WatchTiming(request_timeout=2.0, watch_seconds=60, backoff_initial=0.05, backoff_max=0.2)
"""Watch timing for tests: quick reconnects, no long waits."""


class KubeGatewayApp:
    """A gateway serving on 127.0.0.1 from ``source``; ``failures`` counts rejected documents."""

    def __init__(self, source: ConfigSource) -> None:
        self.registry = CollectorRegistry()
        self.observer = GatewayObserver(self.registry)
        self.state: GatewayState = make_state(self.observer)
        self.app = make_app(self.state, source, self.observer, 0.05)
        self.server = TestServer(self.app, host="127.0.0.1", handler_cancellation=True)

    async def start(self) -> None:
        await self.server.start_server()

    async def close(self) -> None:
        await self.server.close()
        await self.observer.close()

    @property
    def reloader(self) -> Any:
        return self.app[RELOADER]

    def reloads(self, result: str) -> float:
        value = self.registry.get_sample_value("modelgate_config_reloads_total", {"result": result})
        return value or 0.0

    @property
    def failures(self) -> float:
        return self.reloads("failure")

    def models(self) -> list[str]:
        runtime = self.state.runtime
        return sorted(runtime.models) if runtime is not None else []

    def fallbacks(self, model: str) -> tuple[str, ...]:
        runtime = self.state.runtime
        return runtime.models[model].fallbacks if runtime is not None else ()

    async def wait(self, predicate: Any, timeout: float = 10.0, what: str = "") -> float:
        """Poll the applied config until ``predicate(self)`` holds; returns the seconds waited."""
        started = time.monotonic()
        while not predicate(self):
            if time.monotonic() - started > timeout:
                raise AssertionError(f"gateway: timed out after {timeout}s waiting for {what}; "
                                     f"serving {self.models()}")
            await asyncio.sleep(0.01)
        return time.monotonic() - started

    def client(self) -> AsyncOpenAI:
        return AsyncOpenAI(base_url=f"http://127.0.0.1:{self.server.port}/v1", api_key=API_KEY,
                           max_retries=0)
