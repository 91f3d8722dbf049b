"""Sidecar injection on a real API server: the chart's webhook configuration (its CEL match
conditions compiled by the server), an operator process serving the webhook with its own CA and
caBundle, and Deployments whose pods the ReplicaSet controller creates through it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kube_cluster import ApiError, Cluster
from sidecar_cluster import SidecarOperator, app_deployment, fresh_namespaces, pods_of, sidecar_operator

INJECT = {"modelgate.dev/inject": "true"}


@pytest.fixture()
def namespaces(cluster: Cluster) -> Iterator[tuple[str, ...]]:
    """The operator's namespace, a plain namespace and one labelled modelgate.dev/inject=enabled."""
    with fresh_namespaces(
        cluster, "mg-operator", "team-a", "team-b", labels={"team-b": {"modelgate.dev/inject": "enabled"}}
    ) as names:
        yield names


@pytest.fixture()
def injector(cluster: Cluster, namespaces: tuple[str, ...], tmp_path: Path) -> Iterator[SidecarOperator]:
    with sidecar_operator(cluster, namespaces[0], namespaces[1:], tmp_path) as running:
        yield running


def _sidecar(pod: dict[str, Any]) -> dict[str, Any] | None:
    return next((c for c in pod["spec"].get("initContainers", []) if c["name"] == "modelgate"), None)


def test_pods_of_an_annotated_deployment_carry_the_native_sidecar(
    cluster: Cluster, namespaces: tuple[str, ...], injector: SidecarOperator
) -> None:
    team_a = namespaces[1]
    cluster.apply(app_deployment("chat", INJECT), team_a)
    pods = pods_of(cluster, team_a, "chat", 2)
    for pod in pods:
        sidecar = _sidecar(pod)
        assert sidecar is not None, pod["spec"]
        assert sidecar["restartPolicy"] == "Always"
        assert sidecar["image"] == injector.template["image"]
        assert sidecar["args"][sidecar["args"].index("--host") + 1] == "127.0.0.1"
        assert {"name": "OPENAI_BASE_URL", "value": "http://127.0.0.1:4000/v1"} in pod["spec"]["containers"][0]["env"]
        assert pod["metadata"]["labels"]["modelgate.dev/sidecar"] == injector.gateway
    assert "Traceback" not in injector.process.log()


def test_opted_out_and_unasked_pods_are_left_alone_and_a_labelled_namespace_injects_by_default(
    cluster: Cluster, namespaces: tuple[str, ...], injector: SidecarOperator
) -> None:
    _, team_a, team_b = namespaces
    cluster.apply(app_deployment("plain", replicas=1), team_a)
    cluster.apply(app_deployment("opted-out", {"modelgate.dev/inject": "false"}, replicas=1), team_b)
    cluster.apply(app_deployment("by-namespace", replicas=1), team_b)
    assert _sidecar(pods_of(cluster, team_a, "plain", 1)[0]) is None
    assert _sidecar(pods_of(cluster, team_b, "opted-out", 1)[0]) is None
    assert _sidecar(pods_of(cluster, team_b, "by-namespace", 1)[0]) is not None


def test_a_pod_the_sidecar_cannot_live_in_is_refused_with_the_reason(
    cluster: Cluster, namespaces: tuple[str, ...], injector: SidecarOperator
) -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "bad", "annotations": INJECT},
        "spec": {"containers": [{"name": "app", "image": "x", "ports": [{"containerPort": 4000}]}]},
    }
    with pytest.raises(ApiError) as refused:
        cluster.request("POST", f"/api/v1/namespaces/{namespaces[1]}/pods", pod)
    assert refused.value.status == 400
    assert "port 4000 is already used by container 'app'" in refused.value.message


def test_the_operator_being_down_does_not_block_pod_creation(
    cluster: Cluster, namespaces: tuple[str, ...], injector: SidecarOperator
) -> None:
    injector.stop()
    team_a = namespaces[1]
    cluster.apply(app_deployment("while-down", INJECT, replicas=2), team_a)
    pods = pods_of(cluster, team_a, "while-down", 2)
    assert [_sidecar(p) for p in pods] == [None, None]  # created, without the sidecar (Ignore)
