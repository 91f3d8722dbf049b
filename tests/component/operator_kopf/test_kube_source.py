"""KubeSource (the gateway's fast path) against kmock's emulator, with and without the operator."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from kube_emulator import CONFIGMAP, GATEWAY_NS, SECRET, api, create_core, create_route
from kube_routes import mock_deployment, route
from modelgate_gateway.config import parse_config
from modelgate_gateway.sources.base import ConfigSnapshot
from modelgate_gateway.sources.kube import KubeSource, WatchTiming
from modelgate_operator.settings import OperatorSettings

FAST = WatchTiming(request_timeout=2.0, watch_seconds=60, backoff_initial=0.05, backoff_max=0.2)
CM_PATH = f"/api/v1/namespaces/{GATEWAY_NS}/configmaps"


class Reader:
    """Consumes a source's snapshots in the background; tests await the next one."""

    def __init__(self, source: KubeSource) -> None:
        self.queue: asyncio.Queue[tuple[float, ConfigSnapshot]] = asyncio.Queue()
        self.iterator = source.snapshots()
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        async for snapshot in self.iterator:
            self.queue.put_nowait((time.monotonic(), snapshot))

    async def next(self, timeout: float = 5.0) -> tuple[float, ConfigSnapshot]:
        return await asyncio.wait_for(self.queue.get(), timeout)


@pytest.fixture()
async def reader(emulator: Any) -> AsyncIterator[Reader]:
    source = KubeSource(
        str(emulator.url), "gateway-token", f"{GATEWAY_NS}/{CONFIGMAP}", secret=f"{GATEWAY_NS}/{SECRET}", timing=FAST
    )
    reader = Reader(source)
    yield reader
    reader.task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await reader.task
    await reader.iterator.aclose()


def _configmap(document: str, name: str = CONFIGMAP) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": GATEWAY_NS},
        "data": {"config.json": document},
    }


def _secret(data: dict[str, bytes]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": SECRET, "namespace": GATEWAY_NS},
        "data": {k: base64.b64encode(v).decode() for k, v in data.items()},
    }


async def test_snapshot_first_then_on_every_change(emulator: Any, reader: Reader) -> None:
    await create_core(emulator, "secrets", _secret({"k": b"v1"}))
    await create_core(emulator, "configmaps", _configmap('{"a": 1}'))
    await create_core(emulator, "configmaps", _configmap('{"other": 1}', name="unrelated"))
    _, first = await reader.next()
    while first.document != b'{"a": 1}':  # the Secret may have been seen alone first: no snapshot
        _, first = await reader.next()
    assert first.fmt == "json" and first.origin == f"configmap {GATEWAY_NS}/{CONFIGMAP}"
    assert dict(first.secrets) == {"k": b"v1"}

    await api(
        emulator,
        "PATCH",
        f"/api/v1/namespaces/{GATEWAY_NS}/secrets/{SECRET}",
        {"data": {"k": base64.b64encode(b"v2").decode()}},
    )
    _, second = await reader.next()
    assert second.document == b'{"a": 1}' and dict(second.secrets) == {"k": b"v2"}

    sent = time.monotonic()
    await api(emulator, "PATCH", f"{CM_PATH}/{CONFIGMAP}", {"data": {"config.json": '{"a": 2}'}})
    arrived, third = await reader.next(timeout=2.0)
    assert third.document == b'{"a": 2}'
    latency = arrived - sent
    print(f"KubeSource: ConfigMap patch -> snapshot in {latency * 1000:.1f} ms")
    assert latency < 2.0
    ours = [r for r in emulator if r.params.get("fieldSelector") == f"metadata.name={CONFIGMAP}"]
    assert len(ours) >= 2  # a list, then a watch
    assert {r.headers.get("Authorization") for r in ours} == {"Bearer gateway-token"}
    assert any(r.params.get("watch") == "true" for r in ours)


async def test_missing_configmap_or_key_means_no_snapshot_yet(emulator: Any, reader: Reader) -> None:
    await create_core(emulator, "configmaps", {**_configmap("{}"), "data": {"wrong-key": "{}"}})
    with pytest.raises(TimeoutError):
        await reader.next(timeout=0.5)
    assert not reader.task.done()  # bad content never ends the iterator
    await api(emulator, "PATCH", f"{CM_PATH}/{CONFIGMAP}", {"data": {"config.json": "{}"}})
    _, snapshot = await reader.next()
    assert snapshot.document == b"{}" and dict(snapshot.secrets) == {}


async def test_reconnects_after_api_errors(emulator: Any) -> None:
    failures = emulator["get", "/api/v1/namespaces/modelgate/configmaps"][:2] << 500
    await create_core(emulator, "configmaps", _configmap('{"ok": true}'))
    source = KubeSource(str(emulator.url), None, f"{GATEWAY_NS}/{CONFIGMAP}", timing=FAST)
    reader = Reader(source)
    try:
        _, snapshot = await reader.next()
        assert snapshot.document == b'{"ok": true}'
        assert len(failures) == 2  # both scripted failures were served before it recovered
    finally:
        reader.task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await reader.task


async def test_operator_to_gateway_fast_path_under_two_seconds(
    operator_running: Any, reader: Reader, operator_settings: OperatorSettings
) -> None:
    emulator = operator_running
    _, initial = await reader.next()
    assert parse_config(initial.document, "json").spec.models == []
    sent = time.monotonic()
    await create_route(emulator, route("fast", "fast", deployments=[mock_deployment()]))
    while True:
        arrived, snapshot = await reader.next(timeout=2.0)
        if [m.name for m in parse_config(snapshot.document, "json").spec.models] == ["fast"]:
            break
    latency = arrived - sent
    print(
        f"fast path: ModelRoute create -> gateway snapshot in {latency * 1000:.0f} ms "
        f"(operator debounce {operator_settings.debounce_seconds} s)"
    )
    assert latency < 2.0
    assert json.loads(snapshot.document)["metadata"]["renderedBy"] == "modelgate-operator"


def test_in_cluster_uses_the_service_account(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import ssl

    from modelgate_gateway.sources import kube

    (tmp_path / "token").write_text("token-1\n")
    seen: list[str] = []
    original = ssl.create_default_context

    def context(cafile: str) -> ssl.SSLContext:
        seen.append(cafile)
        return original()

    monkeypatch.setattr(kube, "SERVICE_ACCOUNT_DIR", tmp_path)
    monkeypatch.setattr(kube.ssl, "create_default_context", context)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "fd00::1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "6443")
    source = KubeSource.in_cluster(
        "modelgate/modelgate-gateway-config", secret="modelgate/modelgate-gateway-upstream-keys"
    )
    assert source.server == "https://[fd00::1]:6443"
    assert seen == [str(tmp_path / "ca.crt")]
    assert source._headers() == {"Authorization": "Bearer token-1"}
    (tmp_path / "token").write_text("token-2")  # projected tokens rotate: re-read each time
    assert source._headers() == {"Authorization": "Bearer token-2"}
    with pytest.raises(ValueError, match="namespace/name"):
        KubeSource("http://x", None, "no-namespace")
