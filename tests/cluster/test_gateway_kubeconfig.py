"""A gateway outside the cluster follows its ConfigMap and Secret on the real API server from a
kubeconfig (client certificate, or a ServiceAccount token bound by the chart's gateway Role), and
serves the OpenAI SDK from what it sees there: new keys and new documents are picked up live."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from openai import AsyncOpenAI

from chart_helm import render
from fake_responses_upstream import FakeResponsesUpstream
from gateway_process import GatewayProcess
from kube_cluster import Cluster


def _document(upstream: str, *models: str) -> str:
    return json.dumps({
        "apiVersion": "config.modelgate.dev/v1alpha1", "kind": "GatewayConfig",
        "spec": {
            "deployments": [{"name": "up", "provider": "openai-compatible", "baseUrl": upstream,
                             "model": "upstream-model", "credentials": {"secretKey": "up"}}],
            "models": [{"name": m, "targets": [{"deployment": "up"}]} for m in models],
            "auth": {"allowUnauthenticated": True},
        },
    })


def _keys(value: str) -> dict[str, str]:
    return {"up": base64.b64encode(value.encode()).decode()}


@pytest.fixture
async def upstream() -> AsyncIterator[FakeResponsesUpstream]:
    fake = FakeResponsesUpstream(text="served through the kubeconfig")
    await fake.start()
    yield fake
    await fake.close()


async def _until(probe: Callable[[], Awaitable[bool]], timeout: float = 15.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not await probe():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("auth", ["client-certificate", "service-account-token"])
async def test_gateway_follows_its_objects_from_a_kubeconfig(
        cluster: Cluster, namespace: str, tmp_path: Path, upstream: FakeResponsesUpstream, auth: str) -> None:
    release = f"g{namespace[-6:]}"
    objects = render(release=release, namespace=namespace)
    configmap, secret = f"{release}-modelgate-gateway-config", f"{release}-modelgate-gateway-upstream-keys"
    cluster.apply_all([
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": configmap},
         "data": {"config.json": _document(upstream.base_url, "gpt-4o")}},
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": secret}, "data": _keys("sk-one")},
    ], namespace)
    env: dict[str, str] = {}
    extra = ["--kube-configmap", f"{namespace}/{configmap}", "--kube-secret", f"{namespace}/{secret}"]
    if auth == "client-certificate":
        extra += ["--kubeconfig", str(cluster.write_kubeconfig(tmp_path / "kubeconfig"))]
    else:  # the chart's gateway ServiceAccount, Role and RoleBinding; kubectl's KUBECONFIG variable
        rbac = [o for o in objects if o["kind"] in {"ServiceAccount", "Role", "RoleBinding"}
                and o["metadata"]["name"] == f"{release}-modelgate-gateway"]
        assert len(rbac) == 3
        cluster.apply_all(rbac, namespace)
        token = cluster.service_account_token(namespace, f"{release}-modelgate-gateway", create=False)
        env["KUBECONFIG"] = str(cluster.write_kubeconfig(tmp_path / "kubeconfig", token=token))
    gateway = GatewayProcess(None, *extra, env=env)
    gateway.start()
    try:
        async with AsyncOpenAI(base_url=gateway.base_url, api_key="unused", max_retries=0) as client:
            response = await client.responses.create(model="gpt-4o", input="hi")
            assert response.output_text == "served through the kubeconfig"
            assert upstream.creates[-1].headers["Authorization"] == "Bearer sk-one"

            cluster.apply({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": secret},
                           "data": _keys("sk-two")}, namespace)

            async def rotated() -> bool:
                await client.responses.create(model="gpt-4o", input="hi")
                return upstream.creates[-1].headers["Authorization"] == "Bearer sk-two"
            await _until(rotated, what="the rotated key")

            cluster.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": configmap},
                           "data": {"config.json": _document(upstream.base_url, "gpt-4o", "gpt-4o-mini")}},
                          namespace)

            async def new_model() -> bool:
                return "gpt-4o-mini" in [m.id async for m in client.models.list()]
            await _until(new_model, what="the new document")
            streamed = [e.type async for e in await client.responses.create(model="gpt-4o-mini", input="hi",
                                                                            stream=True)]
            assert streamed[-1] == "response.completed"
    finally:
        out, err = gateway.stop()
    logs = (out + err).decode()
    assert "sk-one" not in logs and "sk-two" not in logs
    assert f"following {namespace}/{configmap} on {cluster.server}" in logs
