"""Add, rotate and delete keyed routes on a real API server: zero rejected documents.

Issue 19, item 3: with the operator pruning the upstream-keys Secret before writing the config,
every route deletion made the gateways reject a document (6 of 6). Here the operator runs
against the envtest API server and a gateway process follows its objects through the API, as a
pod does; its ``modelgate_config_reloads_total{result="failure"}`` must stay 0 while it serves
every change. Medians are printed with ``-s`` (docs/operations.md quotes them).
"""

from __future__ import annotations

import asyncio
import base64
import statistics
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from openai import AsyncOpenAI, NotFoundError

from cluster_gateway import BASE_CONFIG, following_gateway, models, reloads, until
from cluster_operator import ROUTE_API, operator_on, operator_settings, route
from fake_responses_upstream import FakeResponsesUpstream
from kube_cluster import Cluster


@pytest.fixture
async def upstream() -> AsyncIterator[FakeResponsesUpstream]:
    fake = FakeResponsesUpstream(text="served")
    await fake.start()
    yield fake
    await fake.close()


def _secret(name: str, value: str) -> dict[str, object]:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name},
            "data": {"api-key": base64.b64encode(value.encode()).decode()}}


async def test_add_rotate_delete_never_rejects_a_document(
        cluster: Cluster, namespace: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        upstream: FakeResponsesUpstream) -> None:
    base = tmp_path / "base.yaml"
    base.write_text(BASE_CONFIG)
    settings = operator_settings(namespace, base_config=str(base))
    timings: dict[str, list[float]] = {"apply": [], "rotate": [], "delete": []}
    async with operator_on(cluster, settings, monkeypatch):
        gateway = following_gateway(cluster, namespace, tmp_path)
        # Ready once the operator published the (empty) first config; the operator runs in this
        # event loop, so the blocking wait goes to a thread.
        await asyncio.to_thread(gateway.start, 30)
        try:
            async with AsyncOpenAI(base_url=gateway.base_url, api_key="unused", max_retries=0) as client:
                for round_ in range(3):
                    model = f"keyed-{round_}"
                    cluster.apply(_secret(f"key-{round_}", f"sk-{round_}-a"), namespace)
                    cluster.apply(route(model, model, {
                        "name": "up", "provider": "openai-compatible", "baseUrl": upstream.base_url,
                        "upstreamModel": "upstream-model",
                        "apiKeySecretRef": {"name": f"key-{round_}", "key": "api-key"}}), namespace)

                    async def served(m: str = model) -> bool:
                        return m in await models(client)
                    timings["apply"].append(await until(served, what=f"{model} served"))
                    await client.responses.create(model=model, input="hi")
                    assert upstream.creates[-1].headers["Authorization"] == f"Bearer sk-{round_}-a"

                    cluster.apply(_secret(f"key-{round_}", f"sk-{round_}-b"), namespace)

                    async def rotated(m: str = model, r: int = round_) -> bool:
                        await client.responses.create(model=m, input="hi")
                        return upstream.creates[-1].headers["Authorization"] == f"Bearer sk-{r}-b"
                    timings["rotate"].append(await until(rotated, what=f"{model} rotated"))

                    cluster.request("DELETE", cluster.path_of(ROUTE_API, "ModelRoute", namespace, model))

                    async def gone(m: str = model) -> bool:
                        try:
                            await client.responses.create(model=m, input="hi")
                        except NotFoundError:
                            return True
                        return False
                    timings["delete"].append(await until(gone, what=f"{model} gone"))
                    assert reloads(gateway, "failure") == 0, f"round {round_}: a document was rejected"
                assert reloads(gateway, "success") >= 10
        finally:
            out, err = await asyncio.to_thread(gateway.stop)
    logs = (out + err).decode()
    assert "rejected config" not in logs and "sk-0-a" not in logs
    print("\nreal API server, gateway process: " + ", ".join(
        f"{what} -> served median {statistics.median(values):.2f}s" for what, values in timings.items()))
