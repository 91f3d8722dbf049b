"""Fixtures: kmock's emulator with ModelGate's resources, and the operator running against it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from kube_emulator import (
    GATEWAY_NS,
    declare_resources,
    running_operator,
    serve_namespace_objects,
    write_kubeconfig,
)
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
