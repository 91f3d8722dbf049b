"""Thousands of routes on a real API server, an operator process and a gateway process (item 6).

The routes and their statuses (what the operator would write, so its first pass has nothing to
report) are created up front; the operator then publishes a sharded config, and one route is
applied and deleted, each timed until the gateway serves the next generation, with the bytes
the operator wrote for it (the ConfigMaps and Secrets whose content changed). Operator and
gateway run as their own processes, as pods do. 1,000 routes run in CI;
``MODELGATE_SCALE_ROUTES=10000`` adds that size (minutes here, for docs/operations.md). Figures
print with ``-s``.
"""

from __future__ import annotations

import asyncio
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import kubernetes
import pytest

from cluster_gateway import BASE_CONFIG, following_gateway, readyz, reloads, until
from cluster_operator import ROUTE_API
from envtest import free_port
from kube_cluster import Cluster
from kube_routes import deployment, route, secret
from many_routes import route_bodies, team_secrets
from modelgate_operator.reconciling.conditions import Rollout, build_status
from modelgate_operator.rendering.render import render
from modelgate_operator.rendering.resources import GROUP, PLURAL, VERSION, parse_route
from operator_process import OperatorProcess

SIZES = [1000] + [int(n) for n in os.environ.get("MODELGATE_SCALE_ROUTES", "").split(",") if n.strip()]


def _seed(cluster: Cluster, namespace: str, total: int) -> None:
    """Routes, their Secrets and their statuses, created through a pool of connections."""
    client = cluster.api_client()
    custom, core = kubernetes.client.CustomObjectsApi(client), kubernetes.client.CoreV1Api(client)
    for (_, name), data in team_secrets(namespace).items():
        core.create_namespaced_secret(namespace, secret(name, {k: v.decode() for k, v in data.items()},
                                                        namespace))
    bodies = route_bodies(total, namespace)
    routes = [parse_route(b, "modelgate") for b in bodies]
    rendered = render(routes, team_secrets(namespace), None, gateway="modelgate", generation=1)

    def create(item: tuple[dict[str, Any], Any]) -> None:
        body, parsed = item
        custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)
        status, _ = build_status(parsed, rendered.verdicts[parsed.key], Rollout(0, 0), None,
                                 "2026-01-01T00:00:00Z")
        custom.patch_namespaced_custom_object_status(GROUP, VERSION, namespace, PLURAL, parsed.name,
                                                     {"status": status})
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(create, zip(bodies, routes, strict=True)))


def _stored(cluster: Cluster, namespace: str) -> dict[str, tuple[str, int]]:
    """Every object the operator keeps: name -> (content hash, payload bytes)."""
    found = {}
    for plural in ("configmaps", "secrets"):
        for item in cluster.request("GET", f"/api/v1/namespaces/{namespace}/{plural}")["items"]:
            notes = item["metadata"].get("annotations") or {}
            if "modelgate.dev/content-hash" in notes:
                found[item["metadata"]["name"]] = (notes["modelgate.dev/content-hash"],
                                                   sum(len(v) for v in (item.get("data") or {}).values()))
    return found


def _written(before: dict[str, tuple[str, int]], after: dict[str, tuple[str, int]]) -> int:
    return sum(size for name, (digest, size) in after.items() if before.get(name, ("", 0))[0] != digest)


@pytest.mark.parametrize("total", SIZES)
async def test_apply_and_delete_at_scale(cluster: Cluster, namespace: str, tmp_path: Path,
                                         total: int) -> None:
    started = time.monotonic()
    await asyncio.to_thread(_seed, cluster, namespace, total)
    figures = [f"{total} routes on the real API server (created in {time.monotonic() - started:.0f}s)"]
    base = tmp_path / "base.yaml"
    base.write_text(BASE_CONFIG)
    # As the chart does: without its peering object, kopf keeps its watches paused.
    cluster.apply({"apiVersion": "kopf.dev/v1", "kind": "KopfPeering",
                   "metadata": {"name": f"mg-{namespace}"}}, namespace)
    port = free_port()
    operator = OperatorProcess(cluster.kubeconfig, {
        "MODELGATE_OPERATOR_NAMESPACES": namespace, "MODELGATE_OPERATOR_GATEWAY_NAMESPACE": namespace,
        "MODELGATE_OPERATOR_BASE_CONFIG": str(base), "MODELGATE_OPERATOR_PEERING": f"mg-{namespace}",
        "MODELGATE_OPERATOR_LIVENESS_HOST": "127.0.0.1", "MODELGATE_OPERATOR_LIVENESS_PORT": str(port)})
    gateway = following_gateway(cluster, namespace, tmp_path)
    begun = time.monotonic()
    operator.start()
    try:
        await asyncio.to_thread(gateway.start, 300)
        figures.append(f"first config served {time.monotonic() - begun:.1f}s after the operator started")

        async def timed(what: str, change: Any) -> None:
            """Make a change; time until the gateway applied the next generation."""
            before = await asyncio.to_thread(_stored, cluster, namespace)
            generation = (await asyncio.to_thread(readyz, gateway))["generation"]
            await asyncio.to_thread(change)

            async def applied() -> bool:
                return bool((await asyncio.to_thread(readyz, gateway))["generation"] != generation)
            took = await until(applied, timeout=300, what=what)
            after = await asyncio.to_thread(_stored, cluster, namespace)
            figures.append(f"{what}: served after {took:.2f}s, {_written(before, after):,} bytes written")

        new = route("new", "new-model", namespace=namespace, deployments=[deployment(secret="team-1")])
        new["metadata"] = {"name": "new", "namespace": namespace}
        path = cluster.path_of(ROUTE_API, "ModelRoute", namespace, "new")
        # The first change may still queue behind kopf's start-up (it handles every route once);
        # the second apply shows the steady state.
        await timed("apply", lambda: cluster.apply(new, namespace))
        await timed("delete", lambda: cluster.request("DELETE", path))
        await timed("apply again", lambda: cluster.apply(new, namespace))
        stored = await asyncio.to_thread(_stored, cluster, namespace)
        figures.append(f"{len(stored)} objects, {sum(size for _, size in stored.values()):,} bytes")
        assert reloads(gateway, "failure") == 0
        assert (await asyncio.to_thread(readyz, gateway))["ready"] is True
    finally:
        out, err = await asyncio.to_thread(gateway.stop)
        log = await asyncio.to_thread(operator.stop)
    assert "rejected config" not in (out + err).decode()
    assert "Traceback" not in log
    print("\n" + "; ".join(figures))
    print("\n".join(line for line in log.splitlines() if "pass over" in line))
