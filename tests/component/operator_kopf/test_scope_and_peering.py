"""kopf's own scoping and peering against the emulator, as the chart deploys the operator.

Namespaced mode: kopf watches only the listed namespaces (the chart grants routes and Secrets
only there). Peering: two replicas with one peering name; only the higher priority one writes,
and the standby takes over when the active one leaves (a clean exit removes its record) or dies
(its record expires after its lifetime).
"""

from __future__ import annotations

import dataclasses
import datetime
import time
from typing import Any

from kube_emulator import (
    CLUSTER_PEERINGS,
    CONFIGMAP,
    GATEWAY_NS,
    ROUTES,
    SECRET,
    api,
    create_namespace,
    create_route,
    obj,
    operator_in_thread,
    running_operator,
    wait_for,
)
from kube_routes import mock_deployment, route
from modelgate_gateway.config import parse_config
from modelgate_operator.settings import OperatorSettings


def _models(emulator: Any) -> list[str]:
    cm = obj(emulator, "v1/configmaps", GATEWAY_NS, CONFIGMAP)
    if cm is None:
        return []
    return [m.name for m in parse_config(cm["data"]["config.json"], "json").spec.models]


def _ready(emulator: Any, ns: str, name: str) -> bool:
    conditions = ((obj(emulator, ROUTES, ns, name) or {}).get("status") or {}).get("conditions")
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions or [])


def _paths(emulator: Any, fragment: str) -> list[str]:
    """Paths the operator requested (the test itself only creates routes, with POST)."""
    return [
        str(r.url.path)
        for r in emulator
        if fragment in str(r.url.path) and not (r.method.value == "POST" and str(r.url.path).endswith("/modelroutes"))
    ]


async def test_kopf_namespaced_mode_renders_watched_namespace_only(
    emulator: Any, operator_settings: OperatorSettings
) -> None:
    for namespace in ("team-a", "team-b"):
        await create_namespace(emulator, namespace)
    scoped = dataclasses.replace(operator_settings, namespaces=("team-a",))
    async with running_operator(scoped, kopf_namespaces=("team-a",)):
        await wait_for(
            lambda: _paths(emulator, "/namespaces/team-a/modelroutes"), what="kopf's watch of team-a's routes"
        )
        await create_route(emulator, route("in", "in", namespace="team-a", deployments=[mock_deployment()]))
        await create_route(emulator, route("out", "out", namespace="team-b", deployments=[mock_deployment()]))
        await wait_for(lambda: _models(emulator) == ["in"], what="only the team-a route")
        await wait_for(lambda: _ready(emulator, "team-a", "in"), what="team-a/in Ready")
        assert "status" not in (obj(emulator, ROUTES, "team-b", "out") or {})
    # What the chart's namespaced RBAC relies on: routes and Secrets are only ever read per
    # watched namespace (plus the gateway's own Secret), never cluster-wide or in team-b.
    route_paths = _paths(emulator, "/modelroutes")
    assert route_paths and all("/namespaces/team-a/" in p for p in route_paths), route_paths
    secret_paths = _paths(emulator, "/secrets")
    assert any("/namespaces/team-a/secrets" in p for p in secret_paths), secret_paths
    gateway_secrets = f"/api/v1/namespaces/{GATEWAY_NS}/secrets"
    assert all(
        p == "/api/v1/namespaces/team-a/secrets"  # kopf's list and watch
        or p.startswith("/api/v1/namespaces/team-a/secrets/")  # referenced Secrets
        or p in {gateway_secrets, f"{gateway_secrets}/{SECRET}"}  # create, get, patch
        for p in secret_paths
    ), secret_paths
    assert not _paths(emulator, "/namespaces/team-b/")


def _configmap_writes(emulator: Any) -> int:
    return sum(1 for r in emulator if r.method.value in {"POST", "PATCH"} and "/configmaps" in str(r.url.path))


def _peers(emulator: Any) -> dict[str, Any]:
    status: dict[str, Any] = (obj(emulator, CLUSTER_PEERINGS, None, "modelgate") or {}).get("status") or {}
    return status


async def test_peering_only_the_higher_priority_replica_writes(
    emulator: Any, operator_settings: OperatorSettings
) -> None:
    await api(
        emulator,
        "POST",
        "/apis/kopf.dev/v1/clusterkopfpeerings",
        {"apiVersion": "kopf.dev/v1", "kind": "ClusterKopfPeering", "metadata": {"name": "modelgate"}},
    )
    high = dataclasses.replace(operator_settings, peering="modelgate", priority=200)
    low = dataclasses.replace(operator_settings, peering="modelgate", priority=100)
    async with running_operator(high, peering_identity="replica-high") as high_memo:
        await wait_for(lambda: "replica-high" in _peers(emulator), what="high in the peering")
        await wait_for(lambda: obj(emulator, "v1/configmaps", GATEWAY_NS, CONFIGMAP), what="the first publish")
        async with running_operator(low, peering_identity="replica-low") as low_memo:
            await wait_for(lambda: "replica-low" in _peers(emulator), what="low in the peering")
            # The low replica ran its startup pass, read the peering and stood by.
            low_runtime = await wait_for(lambda: low_memo.get("modelgate_runtime"), what="low replica started")
            await wait_for(lambda: low_runtime.reconciler.paused, what="low replica paused")
            writes_before = _configmap_writes(emulator)
            await create_route(emulator, route("m", "m", deployments=[mock_deployment()]))
            await wait_for(lambda: _models(emulator) == ["m"], what="m published")
            await wait_for(lambda: _ready(emulator, "default", "m"), what="m Ready")
            high_runtime = high_memo["modelgate_runtime"]
            assert low_runtime.reconciler.writes == 0
            assert high_runtime.reconciler.writes >= 2  # first publish (Secret, ConfigMap), m
            assert _configmap_writes(emulator) - writes_before == 1
        assert low_runtime.reconciler.writes == 0


async def _create_peering(emulator: Any, status: dict[str, Any] | None = None) -> None:
    body: dict[str, Any] = {
        "apiVersion": "kopf.dev/v1",
        "kind": "ClusterKopfPeering",
        "metadata": {"name": "modelgate"},
    }
    if status:
        body["status"] = status
    await api(emulator, "POST", "/apis/kopf.dev/v1/clusterkopfpeerings", body)


async def test_peering_standby_takes_over_when_the_active_replica_exits(
    emulator: Any, operator_settings: OperatorSettings
) -> None:
    """A rolling update: the active replica stops, and kopf removes its record on the way out.

    The low replica starts first, in the test's loop, and publishes; the high one joins in its
    own thread (see :func:`operator_in_thread` for why). The low replica notices the high one at
    its next pass (resync 1 s here), stands by, and takes over once the high one has left.
    """
    await _create_peering(emulator)
    high = dataclasses.replace(operator_settings, peering="modelgate", priority=200)
    low = dataclasses.replace(operator_settings, peering="modelgate", priority=100, resync_seconds=1.0)
    async with running_operator(low, peering_identity="replica-low") as low_memo:
        low_runtime = await wait_for(lambda: low_memo.get("modelgate_runtime"), what="low replica started")
        await wait_for(
            lambda: obj(emulator, "v1/configmaps", GATEWAY_NS, CONFIGMAP),
            what="the first publish, by the low replica alone",
        )
        async with operator_in_thread(high, peering_identity="replica-high") as high_memo:
            await wait_for(lambda: low_runtime.reconciler.paused, what="low replica paused")
            low_writes = low_runtime.reconciler.writes  # a paused pass writes nothing
            high_runtime = high_memo["modelgate_runtime"]
            high_writes = high_runtime.reconciler.writes
            await create_route(emulator, route("a", "a", deployments=[mock_deployment()]))
            await wait_for(lambda: _models(emulator) == ["a"], what="a published")
            # The counter moves just after the write the emulator already shows: wait for it.
            await wait_for(lambda: high_runtime.reconciler.writes > high_writes, what="a published by the high replica")
            assert low_runtime.reconciler.writes == low_writes
        assert "replica-high" not in _peers(emulator)  # removed by the high replica's exit
        await create_route(emulator, route("b", "b", deployments=[mock_deployment()]))
        await wait_for(lambda: _models(emulator) == ["a", "b"], timeout=10, what="b published by the low replica")
        await wait_for(lambda: _ready(emulator, "default", "b"), what="b Ready")
        assert not low_runtime.reconciler.paused
        assert low_runtime.reconciler.writes > low_writes


async def test_peering_standby_takes_over_when_the_active_record_expires(
    emulator: Any, operator_settings: OperatorSettings
) -> None:
    """A crash: the active replica's record stays, un-refreshed, until its lifetime runs out.

    The crashed replica is a record only (priority 300, lifetime 3 s, last seen now), so the
    standby waits for the expiry and nothing else: kopf wakes at the record's deadline, drops
    it and resumes its watches, and the loop's next pass sees no live peer either.
    """
    lifetime = 3
    now = datetime.datetime.now(datetime.UTC)
    await _create_peering(
        emulator, {"replica-crashed": {"priority": 300, "lifetime": lifetime, "lastseen": now.isoformat()}}
    )
    low = dataclasses.replace(operator_settings, peering="modelgate", priority=100)
    async with running_operator(low, peering_identity="replica-low") as low_memo:
        low_runtime = await wait_for(lambda: low_memo.get("modelgate_runtime"), what="low replica started")
        await wait_for(lambda: low_runtime.reconciler.paused, what="low replica paused")
        await create_route(emulator, route("m", "m", deployments=[mock_deployment()]))
        await wait_for(
            lambda: _models(emulator) == ["m"],
            timeout=lifetime + 7,
            what="m published by the low replica after the record expired",
        )
        published_at = time.time()
        assert published_at >= now.timestamp() + lifetime  # not before the record expired
        await wait_for(lambda: "replica-crashed" not in _peers(emulator), what="kopf dropping the dead record")
        assert low_runtime.reconciler.writes >= 1 and not low_runtime.reconciler.paused
