"""A ``modelgate-gateway`` process following its objects on the envtest API server.

It runs as its own process (``--kube-configmap`` / ``--kube-secret`` with a kubeconfig), as a pod
would, so timing figures are not skewed by sharing the test's interpreter. ``reloads`` reads its
``modelgate_config_reloads_total`` from ``/metrics``: what an alert on rejected documents sees.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from openai import AsyncOpenAI

from gateway_process import GatewayProcess
from kube_cluster import Cluster

BASE_CONFIG = ("apiVersion: config.modelgate.dev/v1alpha1\nkind: GatewayConfig\n"
               "spec:\n  auth: {allowUnauthenticated: true}\n")
"""Operator base config for these tests: the gateway serves without client keys."""


def following_gateway(cluster: Cluster, namespace: str, tmp_path: Path,
                      configmap: str = "modelgate-gateway-config",
                      secret: str = "modelgate-gateway-upstream-keys") -> GatewayProcess:
    kubeconfig = cluster.write_kubeconfig(tmp_path / "gateway-kubeconfig")
    return GatewayProcess(None, "--kube-configmap", f"{namespace}/{configmap}",
                          "--kube-secret", f"{namespace}/{secret}", "--kubeconfig", str(kubeconfig))


def readyz(gateway: GatewayProcess) -> dict[str, Any]:
    """The gateway's /readyz body: cheap to poll, unlike /v1/models with thousands of models."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{gateway.port}/readyz", timeout=5) as response:
            return dict(json.loads(response.read()))
    except urllib.error.HTTPError as exc:
        with exc:
            return dict(json.loads(exc.read()))


def reloads(gateway: GatewayProcess, result: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{gateway.metrics_port}/metrics", timeout=5) as response:
        text = response.read().decode()
    found = re.search(rf'^modelgate_config_reloads_total{{result="{result}"}} (\S+)$', text, re.M)
    return float(found.group(1)) if found else 0.0


async def models(client: AsyncOpenAI) -> list[str]:
    return sorted([m.id async for m in client.models.list()])


async def until(probe: Callable[[], Awaitable[bool]], timeout: float = 30.0, what: str = "") -> float:
    """Await ``probe()`` until it is true (bounded); returns the seconds it took."""
    started = time.monotonic()
    while not await probe():
        assert time.monotonic() - started < timeout, f"timed out after {timeout}s waiting for {what}"
        await asyncio.sleep(0.02)
    return time.monotonic() - started
