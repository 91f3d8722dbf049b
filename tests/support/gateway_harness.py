"""Run the real gateway app in-process on a real loopback socket, configured from a file.

The harness writes a config document to a temp file, serves it through the same FileSource and
Reloader as production (fast poll), and uses the real GatewayObserver with a fresh registry.
Only upstreams are fakes (see fake_responses_upstream.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
import yaml
from aiohttp.test_utils import TestServer
from openai import AsyncOpenAI
from prometheus_client import CollectorRegistry

from modelgate_gateway import ids
from modelgate_gateway.app import RELOADER, make_app, make_state
from modelgate_gateway.appstate import GatewayState
from modelgate_gateway.observability.observer import GatewayObserver
from modelgate_gateway.sources.endpointslices import EndpointSliceFollower
from modelgate_gateway.sources.files import FileSource

API_KEY = "sk-test-gateway-key"
SIGNING_KEY = "test-signing-key-0123456789abcdef"


def gateway_id(upstream_id: str, deployment: str) -> str:
    """The id the gateway hands the test key (``API_KEY``, key ``test``, no tenant) for an upstream id."""
    key = SIGNING_KEY.encode()
    return ids.encode(key, ids.owner_tag(key, ids.key_owner("test", None)), deployment, upstream_id)


def gateway_conversation_id(upstream_id: str, deployment: str) -> str:
    """The conversation id the gateway hands the test key for an upstream conversation id."""
    key = SIGNING_KEY.encode()
    return ids.encode_conversation(key, ids.owner_tag(key, ids.key_owner("test", None)), deployment, upstream_id)


def deployment(name: str, base_url: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "provider": "openai-compatible",
        "baseUrl": base_url,
        "model": f"up-{name}",
        "credentials": {"secretKey": "upstream-key"},
        **extra,
    }


def config_doc(deployments: list[dict[str, Any]], models: list[dict[str, Any]], **spec_extra: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "deployments": deployments,
        "models": models,
        "auth": {"keys": [{"name": "test", "sha256": hashlib.sha256(API_KEY.encode()).hexdigest()}]},
        "responseIds": {"signingKey": {"secretKey": "signing-key"}},
        **spec_extra,
    }
    return {"apiVersion": "config.modelgate.dev/v1alpha1", "kind": "GatewayConfig", "spec": spec}


class GatewayHarness:
    def __init__(self, tmp: Path, doc: dict[str, Any], endpoint_slices: EndpointSliceFollower | None = None) -> None:
        """``endpoint_slices``: follows the Services of serviceRef deployments (a cluster test's API server)."""
        self.dir = tmp
        self.config_path = tmp / "config.yaml"
        self.secrets_dir = tmp / "secrets"
        self.secrets_dir.mkdir(exist_ok=True)
        (self.secrets_dir / "upstream-key").write_text("sk-upstream-secret-value\n")
        (self.secrets_dir / "signing-key").write_text(SIGNING_KEY)
        self.log_path = tmp / "requests.log"
        self.write(doc)
        self.registry = CollectorRegistry()
        self._log = self.log_path.open("ab")
        self.observer = GatewayObserver(self.registry, log_stream=self._log)
        self.state: GatewayState = make_state(self.observer, self.registry)
        source = FileSource(self.config_path, self.secrets_dir, 0.05)
        self.app = make_app(self.state, source, self.observer, 0.05, endpoint_slices=endpoint_slices)
        self.server = TestServer(self.app, host="127.0.0.1", handler_cancellation=True)

    def write(self, doc: dict[str, Any]) -> None:
        tmp = self.config_path.with_suffix(".tmp")
        tmp.write_text(yaml.safe_dump(doc))
        tmp.replace(self.config_path)  # atomic, like kubelet's symlink swap

    async def start(self) -> None:
        await self.server.start_server()
        await asyncio.wait_for(self.app[RELOADER].loaded.wait(), 10)

    async def wait_for_checksum_change(self, old: str, timeout: float = 10) -> None:
        async def changed() -> None:
            while self.state.runtime is None or self.state.runtime.checksum == old:
                await asyncio.sleep(0.02)

        await asyncio.wait_for(changed(), timeout)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}/v1"

    def client(self, api_key: str = API_KEY, **kwargs: Any) -> AsyncOpenAI:
        return AsyncOpenAI(base_url=self.base_url, api_key=api_key, max_retries=0, **kwargs)

    def log_lines(self) -> list[dict[str, Any]]:
        self._log.flush()
        return [orjson.loads(line) for line in self.log_path.read_bytes().splitlines() if line.strip()]

    async def close(self) -> None:
        await self.server.close()
        await self.observer.close()
        self._log.close()


@contextlib.asynccontextmanager
async def harnesses(tmp: Path) -> AsyncIterator[Callable[..., Awaitable[GatewayHarness]]]:
    """``start(doc, secrets={name: value})`` runs a gateway (secrets override the harness's own);
    every gateway started is closed on exit. For test layers without the component conftest."""
    started: list[GatewayHarness] = []

    async def start(doc: dict[str, Any], secrets: dict[str, str] | None = None) -> GatewayHarness:
        directory = tmp / f"gw{len(started)}"
        directory.mkdir()
        harness = GatewayHarness(directory, doc)
        for name, value in (secrets or {}).items():
            (harness.secrets_dir / name).write_text(value)
        await harness.start()
        started.append(harness)
        return harness

    try:
        yield start
    finally:
        for harness in started:
            await harness.close()
