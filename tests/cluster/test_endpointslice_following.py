"""A serviceRef pool follows its Service's EndpointSlices on a real API server, live.

The EndpointSlices are written by the test: no kubelet runs, so no pod ever becomes ready for the
EndpointSlice controller, and the API server refuses loopback addresses in slices, so the servers
here are documentation addresses (192.0.2.0/24) nobody answers on. Traffic to a pool's servers is
the component layer's (tests/component/gateway/test_pool_servers.py, test_service_pool_traffic.py);
here: what the API says becomes the pool, within milliseconds, read with the token of the chart's
gateway ServiceAccount bound only by the chart's EndpointSlice Role of that namespace.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import openai
import pytest

from chart_helm import render
from gateway_harness import GatewayHarness, config_doc
from kube_cluster import Cluster
from modelgate_gateway.sources.endpointslices import EndpointSliceFollower

SERVICE = "llama"


def _slice(name: str, addresses: dict[str, bool], port_name: str = "http") -> dict[str, Any]:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": name,
            "labels": {
                "kubernetes.io/service-name": SERVICE,
                "endpointslice.kubernetes.io/managed-by": "modelgate-tests",
            },
        },
        "addressType": "IPv4",
        "ports": [{"name": port_name, "port": 8000, "protocol": "TCP"}],
        "endpoints": [{"addresses": [a], "conditions": {"ready": ready}} for a, ready in addresses.items()],
    }


def _service(cluster: Cluster, namespace: str) -> None:
    cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": SERVICE},
            "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8000}]},  # no selector: slices are ours
        },
        namespace,
    )


async def _until(check: Callable[[], bool], what: str, timeout: float = 10.0) -> float:
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < timeout, f"timed out waiting for {what}"
        await asyncio.sleep(0.005)
    return time.monotonic() - started


def _members(gateway: GatewayHarness, deployment: str = "vllm") -> set[str]:
    pool = gateway.state.servers.get(deployment)
    return set() if pool is None else {m.dep.member for m in pool.members}


def _pool_doc(*namespaces: str) -> dict[str, Any]:
    deployments = [
        {
            "name": f"vllm{'' if i == 0 else i}",
            "provider": "vllm",
            "model": "up",
            "serviceRef": {"namespace": ns, "name": SERVICE, "port": "http"},
        }
        for i, ns in enumerate(namespaces)
    ]
    models = [
        {"name": f"llama{'' if i == 0 else i}", "targets": [{"deployment": d["name"]}]}
        for i, d in enumerate(deployments)
    ]
    return config_doc(deployments, models)


async def test_a_service_pool_follows_its_endpointslices_live(
    cluster: Cluster, namespace: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    release = f"e{namespace[-6:]}"
    sets = (f"gateway.rbac.endpointSliceNamespaces={{{namespace}}}",)
    objects = render(release=release, namespace=namespace, sets=sets)
    account = f"{release}-modelgate-gateway"
    rbac = [o for o in objects if o["kind"] == "ServiceAccount" and o["metadata"]["name"] == account] + [
        o
        for o in objects
        if o["kind"] in {"Role", "RoleBinding"} and o["metadata"]["name"] == f"{account}-endpointslices"
    ]
    assert len(rbac) == 3
    cluster.apply_all(rbac, namespace)
    token = cluster.service_account_token(namespace, account, create=False)
    _service(cluster, namespace)
    cluster.apply(_slice("llama-a", {"192.0.2.1": True, "192.0.2.2": True}), namespace)
    cluster.apply(_slice("llama-b", {"192.0.2.3": True}), namespace)
    elsewhere = cluster.create_namespace("elsewhere")  # no Role there: the gateway may not read it
    _service(cluster, elsewhere)
    cluster.apply(_slice("llama-a", {"192.0.2.9": True}), elsewhere)

    tls = ssl.create_default_context(cafile=str(cluster.ca_cert))
    follower = EndpointSliceFollower(cluster.server, token, ssl_context=tls)
    caplog.set_level(logging.WARNING, logger="modelgate_gateway.sources.endpointslices")
    gateway = GatewayHarness(tmp_path, _pool_doc(namespace, elsewhere), endpoint_slices=follower)
    await gateway.start()
    try:
        await _until(lambda: _members(gateway) == {"192.0.2.1:8000", "192.0.2.2:8000", "192.0.2.3:8000"}, "3 servers")
        figures = []
        # a server stops being ready
        cluster.apply(_slice("llama-a", {"192.0.2.1": False, "192.0.2.2": True}), namespace)
        figures.append(await _until(lambda: _members(gateway) == {"192.0.2.2:8000", "192.0.2.3:8000"}, "not ready"))
        # a slice is deleted
        cluster.request("DELETE", cluster.path_of("discovery.k8s.io/v1", "EndpointSlice", namespace, "llama-b"))
        figures.append(await _until(lambda: _members(gateway) == {"192.0.2.2:8000"}, "the deleted slice"))
        # a new pod, ready again, and one whose only port is another one (not this pool's)
        cluster.apply(_slice("llama-a", {"192.0.2.1": True, "192.0.2.2": True, "192.0.2.4": True}), namespace)
        cluster.apply(_slice("llama-c", {"192.0.2.5": True}, port_name="grpc"), namespace)
        figures.append(
            await _until(lambda: _members(gateway) == {"192.0.2.1:8000", "192.0.2.2:8000", "192.0.2.4:8000"}, "added")
        )
        assert max(figures) < 5, figures

        # The namespace without the Role: no server, a log line saying why, a clear error for clients.
        await _until(lambda: "may not read EndpointSlices in namespace " + elsewhere in caplog.text, "the 403")
        assert _members(gateway, "vllm1") == set()
        async with gateway.client(timeout=10) as client:
            with pytest.raises(openai.APIStatusError) as failed:
                await client.responses.create(model="llama1", input="hi")
        assert failed.value.status_code == 502
        assert "no ready server in its pool" in failed.value.message
    finally:
        await gateway.close()
        cluster.delete_namespace(elsewhere)
