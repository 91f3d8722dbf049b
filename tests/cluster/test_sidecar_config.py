"""Per-namespace sidecar config on a real API server, written by an operator process that runs
with the chart's RBAC: each namespace gets its own routes and the platform's shared ones, never
another team's routes or keys; the pods' ServiceAccount may read exactly its namespace's objects;
a namespace that needs no document any more loses its objects."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cluster_operator import route, route_status
from kube_cluster import ApiError, Cluster
from sidecar_cluster import SidecarOperator, app_deployment, pods_of, read_or_none, sidecar_operator, wait_until


def _secret(value: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "openai"},
        "data": {"api-key": base64.b64encode(value.encode()).decode()},
    }


def _deployments(text: str) -> list[dict[str, Any]]:
    """A mock that answers, and a standby upstream whose key the namespace's Secret must carry."""
    return [
        {"name": "mock", "provider": "mock", "upstreamModel": "canned", "mock": {"text": text}},
        {
            "name": "upstream",
            "provider": "openai",
            "baseUrl": "https://api.openai.com/v1",
            "weight": 0,
            "upstreamModel": "gpt-4o",
            "apiKeySecretRef": {"name": "openai", "key": "api-key"},
        },
    ]


@pytest.fixture()
def namespaces(platform_and_teams: tuple[str, ...]) -> tuple[str, ...]:
    return platform_and_teams


@pytest.fixture()
def injector(cluster: Cluster, namespaces: tuple[str, ...], tmp_path: Path) -> Iterator[SidecarOperator]:
    platform, team_a, team_b = namespaces
    cluster.apply(_secret("sk-platform"), platform)
    cluster.apply(_secret("sk-team-a"), team_a)
    cluster.apply(_secret("sk-team-b"), team_b)
    cluster.apply(
        route("shared", "shared-model", *_deployments("from the platform"), sidecars={"shareWith": [team_a]}), platform
    )
    cluster.apply(route("a-chat", "gpt-4o", *_deployments("from team a"), sidecars={"attach": True}), team_a)
    cluster.apply(
        route("b-chat", "b-model", *_deployments("from team b"), sidecars={"attach": True, "sharedGateway": False}),
        team_b,
    )
    # The operator's own namespace holds the platform's routes (the chart's default sharing namespace).
    with sidecar_operator(cluster, platform, namespaces, tmp_path) as running:
        yield running


def _object(cluster: Cluster, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
    return read_or_none(cluster, "v1", kind, name, namespace)


def _models(cluster: Cluster, namespace: str, name: str) -> list[str] | None:
    found = _object(cluster, "ConfigMap", namespace, name)
    if found is None or "config.json" not in (found.get("data") or {}):
        return None
    return sorted(m["name"] for m in json.loads(found["data"]["config.json"])["spec"]["models"])


def _values(cluster: Cluster, namespace: str, name: str) -> set[bytes]:
    found = _object(cluster, "Secret", namespace, name) or {}
    return {base64.b64decode(v) for v in (found.get("data") or {}).values()}


def test_each_namespace_gets_its_own_routes_and_keys_and_its_pods_read_only_those(
    cluster: Cluster, namespaces: tuple[str, ...], injector: SidecarOperator
) -> None:
    platform, team_a, team_b = namespaces
    configmap, secret = injector.template["configMap"], injector.template["secret"]
    cluster.service_account_token(team_a, "chat")  # creates the ServiceAccount
    deployment = app_deployment("chat", {"modelgate.dev/inject": "true"}, replicas=1)
    deployment["spec"]["template"]["spec"]["serviceAccountName"] = "chat"
    cluster.apply(deployment, team_a)
    pods_of(cluster, team_a, "chat", 1)
    assert wait_until(
        lambda: _models(cluster, team_a, configmap) == ["gpt-4o", "shared-model"],
        20,
        "team-a's document holds its route and the shared one",
    )
    assert wait_until(lambda: _models(cluster, team_b, configmap) == ["b-model"], 20, "team-b's document")
    values_a, values_b = _values(cluster, team_a, secret), _values(cluster, team_b, secret)
    assert {b"sk-team-a", b"sk-platform"} <= values_a and b"sk-team-b" not in values_a
    assert b"sk-team-b" in values_b and not {b"sk-team-a", b"sk-platform"} & values_b
    binding = wait_until(lambda: _object_rb(cluster, team_a, injector), 20, "the RoleBinding in team-a")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "chat", "namespace": team_a}]
    assert binding["roleRef"]["name"] == injector.template["gateway"] + "-sidecar"
    assert _object_rb(cluster, team_b, injector) is None  # no injected pods there: nobody to bind
    # The pod's ServiceAccount reads its namespace's sidecar objects, and nothing else.
    token = cluster.service_account_token(team_a, "chat", create=False)
    cluster.request("GET", f"/api/v1/namespaces/{team_a}/configmaps/{configmap}", token=token)
    cluster.request("GET", f"/api/v1/namespaces/{team_a}/secrets?fieldSelector=metadata.name%3D{secret}", token=token)
    for path in (
        f"/api/v1/namespaces/{team_a}/secrets/openai",
        f"/api/v1/namespaces/{team_b}/configmaps/{configmap}",
        f"/api/v1/namespaces/{platform}/secrets/openai",
    ):
        with pytest.raises(ApiError) as denied:
            cluster.request("GET", path, token=token)
        assert denied.value.status == 403, path
    # Statuses: the sidecar-only route is accepted through its namespace's document.
    status = wait_until(lambda: route_status(cluster, team_b, "b-chat").get("sidecars"), 20, "b-chat's status")
    assert status == "0/0"  # no sidecar runs there (and pods never run without a kubelet)
    assert route_status(cluster, team_b, "b-chat")["rollout"] == "-"
    ready = next(c for c in route_status(cluster, team_b, "b-chat")["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True", ready
    assert "Traceback" not in injector.process.log() and " 403" not in injector.process.log(), injector.process.log()


def _object_rb(cluster: Cluster, namespace: str, injector: SidecarOperator) -> dict[str, Any] | None:
    return read_or_none(
        cluster, "rbac.authorization.k8s.io/v1", "RoleBinding", injector.gateway + "-sidecar", namespace
    )


def test_a_namespace_that_needs_no_document_any_more_loses_its_objects_and_a_withdrawn_share_its_key(
    cluster: Cluster, namespaces: tuple[str, ...], injector: SidecarOperator
) -> None:
    platform, team_a, team_b = namespaces
    configmap, secret = injector.template["configMap"], injector.template["secret"]
    wait_until(lambda: _models(cluster, team_b, configmap) == ["b-model"], 20, "team-b's document")
    wait_until(lambda: b"sk-platform" in _values(cluster, team_a, secret), 20, "the shared key in team-a")
    cluster.request("DELETE", f"/apis/modelgate.dev/v1alpha1/namespaces/{team_b}/modelroutes/b-chat")
    cluster.apply(
        route("shared", "shared-model", *_deployments("from the platform"), sidecars={"shareWith": []}), platform
    )
    wait_until(
        lambda: (
            _object(cluster, "ConfigMap", team_b, configmap) is None
            and _object(cluster, "Secret", team_b, secret) is None
        ),
        20,
        "team-b's sidecar objects deleted",
    )
    wait_until(lambda: _models(cluster, team_a, configmap) == ["gpt-4o"], 20, "the share withdrawn from team-a")
    # No sidecar runs in team-a to wait for, so the key is pruned right after.
    wait_until(lambda: b"sk-platform" not in _values(cluster, team_a, secret), 20, "the shared key pruned")
