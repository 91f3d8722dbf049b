"""One namespace's trouble stays in that namespace: a team namespace whose ResourceQuota refuses
the sidecar Secret does not stop the other namespaces' documents or any route's status; its own
routes say why in Ready, and the operator retries by itself until the quota allows the write."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cluster_operator import mock_deployment, route, route_status
from kube_cluster import Cluster
from sidecar_cluster import SidecarOperator, read_or_none, sidecar_operator, wait_until

QUOTA = "no-secrets"


@pytest.fixture()
def namespaces(platform_and_teams: tuple[str, ...]) -> tuple[str, ...]:
    return platform_and_teams


@pytest.fixture()
def injector(cluster: Cluster, namespaces: tuple[str, ...], tmp_path: Path) -> Iterator[SidecarOperator]:
    platform, team_a, team_b = namespaces
    quota = {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": QUOTA},
        "spec": {"hard": {"secrets": "0"}},
    }
    cluster.apply(quota, team_a)  # team-a sorts first: before the fix it stopped every pass there
    only_sidecars = {"attach": True, "sharedGateway": False}
    cluster.apply(route("a-chat", "a-model", mock_deployment("mock", "a"), sidecars=only_sidecars), team_a)
    cluster.apply(route("b-chat", "b-model", mock_deployment("mock", "b"), sidecars=only_sidecars), team_b)
    cluster.apply(
        route("shared", "shared-model", mock_deployment("mock", "p"), sidecars={"shareWith": [team_b]}), platform
    )
    # Retries a little faster than the chart's 5 s, so the recovery is seen within seconds.
    env = {"MODELGATE_OPERATOR_RETRY_SECONDS": "0.5", "MODELGATE_OPERATOR_RETRY_MAX_SECONDS": "1"}
    with sidecar_operator(cluster, platform, namespaces, tmp_path, env=env) as running:
        yield running


def _ready(cluster: Cluster, namespace: str, name: str) -> dict[str, Any] | None:
    conditions = route_status(cluster, namespace, name).get("conditions") or []
    return next((c for c in conditions if c["type"] == "Ready"), None)


def test_a_namespace_refusing_its_sidecar_objects_delays_nobody_else(
    cluster: Cluster, namespaces: tuple[str, ...], injector: SidecarOperator
) -> None:
    platform, team_a, team_b = namespaces
    configmap = injector.template["configMap"]
    wait_until(lambda: read_or_none(cluster, "v1", "ConfigMap", configmap, team_b), 20, "team-b's document")
    for namespace, name in ((team_b, "b-chat"), (platform, "shared")):
        wait_until(
            lambda ns=namespace, n=name: (_ready(cluster, ns, n) or {}).get("status") == "True", 20, f"{name} Ready"
        )
    refused = wait_until(lambda: _ready(cluster, team_a, "a-chat"), 20, "a-chat's status")
    assert (refused["status"], refused["reason"]) == ("False", "SidecarConfigNotPublished"), refused
    assert team_a in refused["message"] and "403 Forbidden" in refused["message"], refused
    assert read_or_none(cluster, "v1", "ConfigMap", configmap, team_a) is None
    wait_until(lambda: "reconcile incomplete, retrying" in injector.process.log(), 10, "the retry logged")

    cluster.request("DELETE", f"/api/v1/namespaces/{team_a}/resourcequotas/{QUOTA}")
    wait_until(lambda: (_ready(cluster, team_a, "a-chat") or {}).get("status") == "True", 20, "a-chat Ready")
    assert read_or_none(cluster, "v1", "ConfigMap", configmap, team_a) is not None
    assert "Traceback" not in injector.process.log(), injector.process.log()
