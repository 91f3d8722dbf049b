"""Fixtures: kmock's emulator with ModelGate's resources, and the operator running against it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from kube_emulator import (
    CONFIGMAP,
    GATEWAY_NS,
    SECRET,
    declare_resources,
    running_operator,
    serve_namespace_objects,
    write_kubeconfig,
)
from kube_gateway import BASE_CONFIG, FAST_WATCH, KubeGatewayApp
from modelgate_gateway.sources.kube import KubeSource
from modelgate_operator.settings import OperatorSettings


@pytest.fixture()
def emulator(kmock: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    declare_resources(kmock)
    serve_namespace_objects(monkeypatch)
    path = tmp_path / "kubeconfig"
    write_kubeconfig(path, str(kmock.url).rstrip("/"))
    monkeypatch.setenv("KUBECONFIG", str(path))
    return kmock


@pytest.fixture()
def operator_settings() -> OperatorSettings:
    return OperatorSettings(
        gateway_namespace=GATEWAY_NS, priority=0,
        debounce_seconds=0.2, debounce_max_seconds=1.0,
        rollout_poll_seconds=0.1, readyz_timeout_seconds=1.0,
    )


@pytest.fixture()
async def operator_running(emulator: Any, operator_settings: OperatorSettings) -> AsyncIterator[Any]:
    async with running_operator(operator_settings):
        yield emulator


@pytest.fixture()
def base_config_file(tmp_path: Path) -> str:
    """An operator base config whose gateway accepts ``kube_gateway.API_KEY``."""
    path = tmp_path / "base.yaml"
    path.write_text(BASE_CONFIG)
    return str(path)


@pytest.fixture()
async def gateway(emulator: Any) -> AsyncIterator[KubeGatewayApp]:
    """A real gateway app following the operator's objects in the emulator through the API."""
    app = KubeGatewayApp(KubeSource(str(emulator.url), "gateway-token", f"{GATEWAY_NS}/{CONFIGMAP}",
                                    secret=f"{GATEWAY_NS}/{SECRET}", timing=FAST_WATCH))
    await app.start()
    yield app
    await app.close()
