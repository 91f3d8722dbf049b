"""Sidecar API keys (chart sidecar.apiKeys.secretName), end to end on a real API server: with them,
a sidecar serves exactly the keys its namespace's Secret holds (through the official SDK), and
follows a rotation of that Secret within 2 s; without them it trusts its pod (tested in
test_sidecar_end_to_end.py)."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from cluster_operator import mock_deployment, route
from kube_cluster import Cluster
from sidecar_cluster import SidecarOperator, injected_sidecar, sidecar_operator, wait_until
from sidecar_process import SidecarProcess

KEYS_SECRET = "sidecar-keys"


def _keys(**keys: str) -> dict[str, Any]:
    data = {name: base64.b64encode(value.encode()).decode() for name, value in keys.items()}
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": KEYS_SECRET}, "data": data}


@pytest.fixture()
def namespaces(platform_and_teams: tuple[str, ...]) -> tuple[str, ...]:
    return platform_and_teams


@pytest.fixture()
def injector(cluster: Cluster, namespaces: tuple[str, ...], tmp_path: Path) -> Iterator[SidecarOperator]:
    platform, team_a, _ = namespaces
    cluster.apply(_keys(app="sk-app-1"), team_a)
    cluster.apply(route("a-chat", "gpt-4o", mock_deployment("mock", "hello"), sidecars={"attach": True}), team_a)
    with sidecar_operator(
        cluster, platform, namespaces, tmp_path, f"sidecar.apiKeys.secretName={KEYS_SECRET}"
    ) as running:
        yield running


@pytest.fixture()
def sidecar(
    cluster: Cluster, namespaces: tuple[str, ...], injector: SidecarOperator, tmp_path: Path
) -> Iterator[SidecarProcess]:
    with injected_sidecar(cluster, namespaces[1], tmp_path) as (process, _):
        yield process


def _answers(process: SidecarProcess, key: str) -> bool:
    """The sidecar answers a request with this key (False: refused as unauthenticated)."""
    client = openai.OpenAI(base_url=process.base_url, api_key=key, max_retries=0, timeout=10)
    try:
        return client.responses.create(model="gpt-4o", input="hi").output_text == "hello"
    except openai.AuthenticationError:
        return False


def test_the_sidecar_serves_exactly_its_namespace_keys_and_follows_their_rotation(
    cluster: Cluster, namespaces: tuple[str, ...], sidecar: SidecarProcess
) -> None:
    sidecar.wait_ready()
    assert _answers(sidecar, "sk-app-1")
    assert not _answers(sidecar, "anything")  # no pod-local trust once keys are configured
    rotated = time.monotonic()
    cluster.apply(_keys(app="sk-app-2"), namespaces[1])
    wait_until(lambda: _answers(sidecar, "sk-app-2"), 10, "the rotated key accepted")
    elapsed = time.monotonic() - rotated
    assert elapsed < 2.0, f"{elapsed:.2f} s from the keys Secret's change to the sidecar using it"
    assert not _answers(sidecar, "sk-app-1")
    assert "sk-app" not in sidecar.stdout() + sidecar.stderr()  # keys are never logged
