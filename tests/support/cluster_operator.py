"""The operator (kopf, in-process) against the envtest API server, scoped to one test namespace.

Each test gets its own namespace and an operator that watches only it and publishes into it, so
tests sharing the session's API server never see each other's routes. Waiting helpers poll the
real API from a worker thread (the operator's kopf tasks share the test's event loop).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, TypeVar

import kopf
import pytest

from kube_cluster import ApiError, Cluster
from kube_emulator import running_operator
from modelgate_operator.settings import OperatorSettings

ROUTE_API = "modelgate.dev/v1alpha1"
_T = TypeVar("_T")


def operator_settings(namespace: str, **overrides: Any) -> OperatorSettings:
    """Settings for an operator confined to ``namespace`` (routes, gateway objects, peering)."""
    values: dict[str, Any] = dict(
        gateway_namespace=namespace, namespaces=(namespace,), priority=0,
        debounce_seconds=0.2, debounce_max_seconds=1.0, rollout_poll_seconds=0.1,
        readyz_timeout_seconds=1.0, peering=f"modelgate-{namespace}",
    )
    values.update(overrides)
    return OperatorSettings(**values)


@contextlib.asynccontextmanager
async def operator_on(cluster: Cluster, settings: OperatorSettings, monkeypatch: pytest.MonkeyPatch,
                      kubeconfig: Path | None = None) -> AsyncIterator[kopf.Memo]:
    """kopf with the ModelGate handlers, logged in through ``kubeconfig`` (default: the cluster's
    admin kubeconfig)."""
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig or cluster.kubeconfig))
    async with running_operator(settings, kopf_namespaces=settings.namespaces) as memo:
        yield memo


async def eventually(probe: Callable[[], _T | None], timeout: float = 15.0, what: str = "") -> _T:
    """Call ``probe`` in a worker thread until it returns something truthy (bounded)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        last = await asyncio.to_thread(probe)
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or probe}; last: {last!r}")
        await asyncio.sleep(0.05)


def route(name: str, model: str, *deployments: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {"apiVersion": ROUTE_API, "kind": "ModelRoute", "metadata": {"name": name},
            "spec": {"model": model, "deployments": list(deployments), **spec}}


def mock_deployment(name: str, text: str = "hi") -> dict[str, Any]:
    return {"name": name, "provider": "mock", "upstreamModel": "canned", "mock": {"text": text}}


def route_status(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    try:
        body = cluster.get(ROUTE_API, "ModelRoute", name, namespace)
    except ApiError as exc:
        if exc.status == 404:
            return {}
        raise
    return dict(body.get("status") or {})
