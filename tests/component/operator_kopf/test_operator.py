"""The whole operator (kopf) against kmock's Kubernetes emulator: ConfigMap, Secret, statuses."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
from typing import Any

from kube_emulator import (
    CONFIGMAP,
    GATEWAY_NS,
    ROUTES,
    SECRET,
    api,
    create_core,
    create_route,
    obj,
    running_operator,
    wait_for,
)
from kube_routes import deployment, mock_deployment, route, secret
from modelgate_gateway.config import GatewayConfig, parse_config

ROUTES_PATH = "/apis/modelgate.dev/v1alpha1/namespaces"


def _config(emulator: Any) -> GatewayConfig | None:
    cm = obj(emulator, "v1/configmaps", GATEWAY_NS, CONFIGMAP)
    return parse_config(cm["data"]["config.json"], "json") if cm else None


def _models(emulator: Any) -> list[str]:
    config = _config(emulator)
    return [m.name for m in config.spec.models] if config else []


def _condition(emulator: Any, ns: str, name: str, ctype: str) -> dict[str, Any]:
    body = obj(emulator, ROUTES, ns, name) or {}
    conditions = (body.get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c["type"] == ctype), {})


async def _wait_condition(
    emulator: Any, ns: str, name: str, ctype: str, status: str, reason: str | None = None
) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        cond = _condition(emulator, ns, name, ctype)
        if cond.get("status") == status and (reason is None or cond.get("reason") == reason):
            return cond
        return None

    result: dict[str, Any] = await wait_for(check, what=f"{ns}/{name} {ctype}={status} {reason}")
    return result


async def test_apply_route_publishes_config_secret_and_ready_status(operator_running: Any) -> None:
    emulator = operator_running
    await create_core(emulator, "secrets", secret("openai", {"api-key": "sk-test"}))
    await create_route(emulator, route("gpt", "gpt-4o"))
    await wait_for(lambda: _models(emulator) == ["gpt-4o"], what="gpt-4o in the config")
    config = _config(emulator)
    assert config is not None
    assert [d.name for d in config.spec.deployments] == ["default/gpt/main"]
    cm = obj(emulator, "v1/configmaps", GATEWAY_NS, CONFIGMAP)
    assert cm is not None
    annotations = cm["metadata"]["annotations"]
    assert annotations["modelgate.dev/config-checksum"] == config.metadata.checksum
    keys = obj(emulator, "v1/secrets", GATEWAY_NS, SECRET)
    assert keys is not None
    assert base64.b64decode(keys["data"]["default.gpt.main"]) == b"sk-test"
    assert "sk-test" not in cm["data"]["config.json"]
    ready = await _wait_condition(emulator, "default", "gpt", "Ready", "True", "Published")
    assert ready["observedGeneration"] == 1
    assert _condition(emulator, "default", "gpt", "Accepted")["status"] == "True"
    assert _condition(emulator, "default", "gpt", "ResolvedRefs")["status"] == "True"
    status = (obj(emulator, ROUTES, "default", "gpt") or {})["status"]
    assert status["deployments"] == ["default/gpt/main"] and status["rollout"] == "0/0"
    # Level-triggered via events only: the operator never writes to a route except its status.
    route_writes = [
        str(r.url.path) for r in emulator if r.method.value in {"PATCH", "PUT"} and "/modelroutes/" in str(r.url)
    ]
    assert route_writes and all(p.endswith("/status") for p in route_writes), route_writes


async def test_broken_secret_marks_the_route_and_keeps_the_others(operator_running: Any) -> None:
    emulator = operator_running
    await create_core(emulator, "secrets", secret("openai", {"api-key": "sk-test"}))
    await create_route(emulator, route("gpt", "gpt-4o"))
    await create_route(emulator, route("mock", "mock", deployments=[mock_deployment()]))
    await wait_for(lambda: _models(emulator) == ["gpt-4o", "mock"], what="both models")

    await api(
        emulator,
        "PATCH",
        "/api/v1/namespaces/default/secrets/openai",
        {"data": {"api-key": None, "other": base64.b64encode(b"x").decode()}},
    )
    cond = await _wait_condition(emulator, "default", "gpt", "ResolvedRefs", "False", "SecretKeyNotFound")
    assert "has no key 'api-key'" in cond["message"]
    assert _models(emulator) == ["mock"]
    await _wait_condition(emulator, "default", "gpt", "Ready", "False", "SecretKeyNotFound")
    assert _condition(emulator, "default", "mock", "Ready")["status"] == "True"
    keys = obj(emulator, "v1/secrets", GATEWAY_NS, SECRET)
    assert keys is not None and "default.gpt.main" not in (keys.get("data") or {})

    await api(emulator, "DELETE", "/api/v1/namespaces/default/secrets/openai")
    await _wait_condition(emulator, "default", "gpt", "ResolvedRefs", "False", "SecretNotFound")

    await create_core(emulator, "secrets", secret("openai", {"api-key": "sk-new"}))
    await _wait_condition(emulator, "default", "gpt", "ResolvedRefs", "True")
    await wait_for(lambda: _models(emulator) == ["gpt-4o", "mock"], what="gpt-4o is back")


async def test_deleted_route_leaves_the_config(operator_running: Any) -> None:
    emulator = operator_running
    await create_route(emulator, route("a", "a", deployments=[mock_deployment()]))
    await create_route(emulator, route("b", "b", deployments=[mock_deployment()]))
    await wait_for(lambda: _models(emulator) == ["a", "b"], what="a and b")
    await api(emulator, "DELETE", f"{ROUTES_PATH}/default/modelroutes/a")
    await wait_for(lambda: _models(emulator) == ["b"], what="a gone")


async def test_burst_of_50_applies_gives_few_configmap_writes(operator_running: Any) -> None:
    emulator = operator_running
    await wait_for(lambda: _config(emulator) is not None, what="the initial config")
    bodies = [route(f"r{i:02d}", f"model-{i:02d}", deployments=[mock_deployment()]) for i in range(50)]
    await asyncio.gather(*(create_route(emulator, b) for b in bodies))
    await wait_for(lambda: len(_models(emulator)) == 50, what="50 models", timeout=10)
    cm = obj(emulator, "v1/configmaps", GATEWAY_NS, CONFIGMAP)
    assert cm is not None
    # generation counts ConfigMap writes: 1 = the initial empty config.
    writes = int(cm["metadata"]["annotations"]["modelgate.dev/config-generation"]) - 1
    print(f"50 applies -> {writes} ConfigMap write(s)")
    assert 1 <= writes <= 3, writes
    await _wait_condition(emulator, "default", "r49", "Ready", "True")


async def test_model_name_conflict_older_route_wins(operator_running: Any) -> None:
    emulator = operator_running
    await create_route(
        emulator, route("new", "shared", deployments=[mock_deployment("n")], created="2026-05-01T00:00:00Z")
    )
    await create_route(
        emulator,
        route("old", "shared", namespace="team-b", deployments=[mock_deployment("o")], created="2026-01-01T00:00:00Z"),
    )
    cond = await _wait_condition(emulator, "default", "new", "Accepted", "False", "ModelNameConflict")
    assert "team-b/old" in cond["message"]
    await _wait_condition(emulator, "team-b", "old", "Ready", "True")
    config = _config(emulator)
    assert config is not None
    assert [d.name for d in config.spec.deployments] == ["team-b/old/o"]

    def conflict_event() -> bool:
        return any(
            o.raw.get("reason") == "ModelNameConflict" and (o.raw.get("involvedObject") or {}).get("name") == "new"
            for key, o in emulator.objects.items()
            if key[0].plural == "events" and not o.deleted
        )

    await wait_for(conflict_event, what="a ModelNameConflict Event")


async def test_spec_change_bumps_observed_generation(operator_running: Any) -> None:
    emulator = operator_running
    await create_core(emulator, "secrets", secret("openai", {"api-key": "sk-test"}))
    await create_route(emulator, route("gpt", "gpt-4o"))
    await _wait_condition(emulator, "default", "gpt", "Ready", "True")
    await api(
        emulator,
        "PATCH",
        f"{ROUTES_PATH}/default/modelroutes/gpt",
        {"metadata": {"generation": 2}, "spec": {"deployments": [deployment(weight=5)]}},
    )

    def weight() -> float | None:
        config = _config(emulator)
        return config.spec.models[0].targets[0].weight if config and config.spec.models else None

    await wait_for(lambda: weight() == 5.0, what="the new weight")
    await wait_for(
        lambda: _condition(emulator, "default", "gpt", "Ready").get("observedGeneration") == 2,
        what="observedGeneration 2",
    )


async def test_config_and_secret_are_owned_by_the_gateway_deployment(operator_running: Any) -> None:
    emulator = operator_running
    await api(
        emulator,
        "POST",
        f"/apis/apps/v1/namespaces/{GATEWAY_NS}/deployments",
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "modelgate-gateway", "namespace": GATEWAY_NS, "uid": "gw-uid"},
            "spec": {
                "selector": {"matchLabels": {"app.kubernetes.io/component": "gateway"}},
                "template": {
                    "metadata": {"labels": {"app.kubernetes.io/component": "gateway"}},
                    "spec": {"containers": [{"name": "gateway", "image": "x"}]},
                },
            },
        },
    )
    await create_route(emulator, route("m", "m", deployments=[mock_deployment()]))
    await wait_for(lambda: _models(emulator) == ["m"], what="m in the config")
    for resource, name in (("v1/configmaps", CONFIGMAP), ("v1/secrets", SECRET)):
        owners = (obj(emulator, resource, GATEWAY_NS, name) or {})["metadata"]["ownerReferences"]
        assert [(o["kind"], o["name"], o["uid"]) for o in owners] == [("Deployment", "modelgate-gateway", "gw-uid")], (
            resource
        )
    document = (obj(emulator, "v1/configmaps", GATEWAY_NS, CONFIGMAP) or {})["data"]["config.json"]
    assert json.loads(document)["metadata"]["renderedBy"] == "modelgate-operator"


async def test_namespace_scope_ignores_routes_elsewhere(emulator: Any, operator_settings: Any) -> None:
    scoped = dataclasses.replace(operator_settings, namespaces=("team-a",))
    async with running_operator(scoped):
        await create_route(emulator, route("in", "in", namespace="team-a", deployments=[mock_deployment()]))
        await create_route(emulator, route("out", "out", namespace="team-b", deployments=[mock_deployment()]))
        await wait_for(lambda: _models(emulator) == ["in"], what="only the team-a route")
        await _wait_condition(emulator, "team-a", "in", "Ready", "True")
        assert "status" not in (obj(emulator, ROUTES, "team-b", "out") or {})
