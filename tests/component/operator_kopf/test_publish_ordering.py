"""Add, rotate and delete keyed routes: a gateway following the objects never rejects a document.

Issue 19, item 3: the operator pruned the upstream-keys Secret before writing the ConfigMap, so
a gateway watching both saw the old config without its key and rejected it on every deletion.
The operator runs against kmock's emulator; the gateway app follows the objects through the API.
"""

from __future__ import annotations

import base64
import dataclasses
from typing import Any

import pytest

from kube_emulator import GATEWAY_NS, SECRET, api, create_core, create_route, obj, wait_for
from kube_gateway import KubeGatewayApp
from kube_routes import deployment, route, secret
from modelgate_operator.settings import OperatorSettings

ROUTES_PATH = "/apis/modelgate.dev/v1alpha1/namespaces/default/modelroutes"


@pytest.fixture()
def operator_settings(operator_settings: OperatorSettings, base_config_file: str) -> OperatorSettings:
    return dataclasses.replace(operator_settings, base_config=base_config_file, debounce_seconds=0.05,
                               debounce_max_seconds=0.5, rollout_poll_seconds=0.05)


def _bearer(gateway: KubeGatewayApp, deployment_name: str) -> str | None:
    """The Authorization header the gateway would send upstream for ``deployment_name``."""
    runtime = gateway.state.runtime
    found = runtime.deployments.get(deployment_name) if runtime is not None else None
    if found is None or found.endpoint is None:
        return None
    head = found.endpoint.head("POST", "/responses", None, (), None, None).decode("latin-1")
    return next((line.split(": ", 1)[1] for line in head.split("\r\n")
                 if line.startswith("Authorization: ")), None)


async def _rotate(emulator: Any, name: str, value: str) -> None:
    await api(emulator, "PATCH", f"/api/v1/namespaces/default/secrets/{name}",
              {"data": {"api-key": base64.b64encode(value.encode()).decode()}})


async def test_add_rotate_delete_never_rejects_a_document(
        operator_running: Any, gateway: KubeGatewayApp) -> None:
    emulator = operator_running
    await gateway.wait(lambda g: g.reloads("success") >= 1, what="the first (empty) config")
    for round_ in range(4):
        name = f"keyed-{round_}"
        await create_core(emulator, "secrets", secret(f"key-{round_}", {"api-key": f"sk-{round_}-a"}))
        await create_route(emulator, route(name, name, deployments=[deployment(secret=f"key-{round_}")]))
        await gateway.wait(lambda g, n=name: n in g.models(), what=f"{name} served")
        assert _bearer(gateway, f"default/{name}/main") == f"Bearer sk-{round_}-a"

        await _rotate(emulator, f"key-{round_}", f"sk-{round_}-b")
        await gateway.wait(lambda g, n=name, r=round_: _bearer(g, f"default/{n}/main") == f"Bearer sk-{r}-b",
                           what=f"{name} rotated")

        await api(emulator, "DELETE", f"{ROUTES_PATH}/{name}")
        await gateway.wait(lambda g, n=name: n not in g.models(), what=f"{name} removed")
        assert gateway.failures == 0, f"round {round_}: the gateway rejected a document"
    # The deleted routes' keys are pruned from the gateway's Secret once nothing uses them.
    def pruned() -> bool:
        data = (obj(emulator, "v1/secrets", GATEWAY_NS, SECRET) or {}).get("data") or {}
        return not any(k.startswith("default.keyed-") for k in data)
    await wait_for(pruned, what="the deleted routes' keys pruned")
    assert gateway.failures == 0
