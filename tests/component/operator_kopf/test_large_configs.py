"""1,000 routes through the operator and a gateway following the API (kmock's emulator).

The routes (with the statuses the operator would write, so the first pass has nothing to say
about them) and their Secrets are put straight into the emulator; then one route is applied,
changed and deleted through the API, and each change is timed until the gateway serves it.
Everything shares this process (emulator, kopf, gateway), so the figures (``-s``) are upper
bounds; tests/cluster/test_large_configs.py measures against a real API server, and
tests/unit/config/test_config_sharding.py covers 10,000 routes in seconds.
"""

from __future__ import annotations

import base64
import dataclasses
import time
from typing import Any

import kmock
import pytest

from kube_emulator import ROUTES, api, create_route, running_operator
from kube_gateway import KubeGatewayApp
from kube_routes import deployment, route
from many_routes import route_bodies, team_secrets
from modelgate_operator.reconciling.conditions import Rollout, build_status
from modelgate_operator.rendering.render import render
from modelgate_operator.rendering.resources import parse_route
from modelgate_operator.settings import OperatorSettings

ROUTES_PATH = "/apis/modelgate.dev/v1alpha1/namespaces/default/modelroutes"


@pytest.fixture()
def operator_settings(operator_settings: OperatorSettings, base_config_file: str) -> OperatorSettings:
    return dataclasses.replace(operator_settings, base_config=base_config_file, debounce_seconds=0.1,
                               debounce_max_seconds=0.5)


def _seed(emulator: Any, total: int) -> None:
    """Routes, their Secrets and the statuses the operator would give them, without any request."""
    bodies = route_bodies(total)
    routes = [parse_route(b, "modelgate") for b in bodies]
    rendered = render(routes, team_secrets(), None, gateway="modelgate", generation=1)
    for body, parsed in zip(bodies, routes, strict=True):
        status, _ = build_status(parsed, rendered.verdicts[parsed.key], Rollout(0, 0), None,
                                 "2026-01-01T00:00:00Z")
        emulator.objects[kmock.resource(ROUTES), "default", parsed.name] = {**body, "status": status}
    for (namespace, name), data in team_secrets().items():
        emulator.objects[kmock.resource("v1/secrets"), namespace, name] = {
            "apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": namespace},
            "data": {k: base64.b64encode(v).decode() for k, v in data.items()}}


@pytest.mark.parametrize("total", [1000])
async def test_apply_change_delete_at_scale(emulator: Any, gateway: KubeGatewayApp,
                                            operator_settings: OperatorSettings, total: int) -> None:
    started = time.monotonic()
    _seed(emulator, total)
    async with running_operator(operator_settings) as memo:
        first = await gateway.wait(lambda g: len(g.models()) == total, timeout=120,
                                   what=f"{total} routes served")
        committer = memo["modelgate_runtime"].reconciler.committer
        shards = len([k for k, o in emulator.objects.items() if k[0].plural == "configmaps" and not o.deleted])
        figures = [f"{total} routes: first config served {first:.1f}s after the operator started "
                   f"({time.monotonic() - started:.1f}s with seeding), {shards} ConfigMaps"]

        async def timed(what: str, change: Any, served: Any) -> None:
            written = committer.bytes_written
            sent = time.monotonic()
            await change()
            await gateway.wait(served, timeout=60, what=what)
            figures.append(f"{what}: served after {time.monotonic() - sent:.2f}s, "
                           f"{committer.bytes_written - written:,} bytes written")

        new = route("new", "new-model", deployments=[deployment(secret="team-1")])
        await timed("apply", lambda: create_route(emulator, new), lambda g: "new-model" in g.models())
        await timed("change", lambda: api(emulator, "PATCH", f"{ROUTES_PATH}/new",
                                          {"spec": {"deployments": [deployment(secret="team-1", upstreamModel="v2")]}}),
                    lambda g: g.state.runtime.deployments["default/new/main"].model == "v2")
        await timed("delete", lambda: api(emulator, "DELETE", f"{ROUTES_PATH}/new"),
                    lambda g: "new-model" not in g.models())
    print("\n" + "\n".join(figures))
    assert gateway.failures == 0
    assert len(gateway.models()) == total
