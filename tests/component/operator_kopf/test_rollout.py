"""Rollout status: the operator counts gateway pods whose /readyz reports the current config."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from kube_emulator import CONFIGMAP, GATEWAY_NS, ROUTES, create_core, create_route, obj, wait_for
from kube_routes import mock_deployment, route


class FakeGatewayPod:
    """A /readyz that serves either the ConfigMap's current checksum or a pinned old one."""

    def __init__(self, emulator: Any) -> None:
        self.emulator = emulator
        self.pinned: str | None = None

    async def readyz(self, _: web.Request) -> web.Response:
        cm = obj(self.emulator, "v1/configmaps", GATEWAY_NS, CONFIGMAP) or {}
        document = json.loads((cm.get("data") or {}).get("config.json", "{}"))
        checksum = self.pinned or (document.get("metadata") or {}).get("checksum")
        return web.json_response({"ready": True, "checksum": checksum, "generation": 1})


def _pod(name: str, port: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": GATEWAY_NS, "labels": {"app.kubernetes.io/component": "gateway"}},
        "spec": {"containers": [{"name": "gateway", "image": "x", "ports": [{"name": "http", "containerPort": port}]}]},
        "status": {"phase": "Running", "podIP": "127.0.0.1"},
    }


def _status(emulator: Any, name: str) -> dict[str, Any]:
    return (obj(emulator, ROUTES, "default", name) or {}).get("status") or {}


def _ready(emulator: Any, name: str) -> dict[str, Any]:
    conditions = _status(emulator, name).get("conditions") or []
    return next((c for c in conditions if c["type"] == "Ready"), {})


async def test_rollout_counts_pods_serving_the_routes_generation(operator_running: Any, aiohttp_server: Any) -> None:
    emulator = operator_running
    pods = [FakeGatewayPod(emulator), FakeGatewayPod(emulator)]
    servers = []
    for pod in pods:
        app = web.Application()
        app.router.add_get("/readyz", pod.readyz)
        servers.append(await aiohttp_server(app))
    pods[1].pinned = "sha256:" + "0" * 64  # stuck on a document the operator never rendered
    await create_core(emulator, "pods", _pod("gw-0", servers[0].port))
    await create_core(emulator, "pods", _pod("gw-1", servers[1].port))
    await create_core(
        emulator,
        "pods",
        {**_pod("other", 1), "metadata": {"name": "other", "namespace": GATEWAY_NS, "labels": {"app": "unrelated"}}},
    )

    await create_route(emulator, route("m", "m", deployments=[mock_deployment()]))
    await wait_for(lambda: _status(emulator, "m").get("rollout") == "1/2", what="rollout 1/2")
    assert _ready(emulator, "m")["status"] == "False"
    assert _ready(emulator, "m")["reason"] == "RollingOut"

    pods[1].pinned = None  # the second pod catches up; the operator is still polling
    await wait_for(lambda: _status(emulator, "m").get("rollout") == "2/2", what="rollout 2/2")
    await wait_for(lambda: _ready(emulator, "m").get("reason") == "Serving", what="Serving")
    assert _ready(emulator, "m")["status"] == "True"
