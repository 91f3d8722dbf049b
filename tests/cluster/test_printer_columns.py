"""`kubectl get mr` as a real API server renders it: the server-side Table (what kubectl prints)."""

from __future__ import annotations

import pytest

from cluster_operator import ROUTE_API, eventually, mock_deployment, operator_on, operator_settings, route, route_status
from kube_cluster import Cluster


def _cells(cluster: Cluster, namespace: str) -> dict[str, dict[str, object]]:
    table = cluster.table(ROUTE_API, "ModelRoute", namespace)
    names = [c["name"] for c in table["columnDefinitions"]]
    return {row["cells"][0]: dict(zip(names, row["cells"], strict=True)) for row in table["rows"]}


async def test_deployments_column_lists_every_deployment(
    cluster: Cluster, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    cluster.apply_all(
        [
            route(
                "assistant", "gpt-4o", mock_deployment("openai"), mock_deployment("partner"), mock_deployment("standby")
            ),
            route("mini", "gpt-4o-mini", mock_deployment("only")),
        ],
        namespace,
    )
    async with operator_on(cluster, operator_settings(namespace), monkeypatch):
        await eventually(
            lambda: (
                route_status(cluster, namespace, "assistant").get("deploymentNames")
                and route_status(cluster, namespace, "mini").get("deploymentNames")
            ),
            what="statuses written",
        )
        rows = _cells(cluster, namespace)
    assert [rows[n]["Deployments"] for n in ("assistant", "mini")] == ["openai,partner,standby", "only"]
    assert rows["assistant"]["Model"] == "gpt-4o" and rows["assistant"]["Ready"] == "True"
    assert list(rows["assistant"]) == ["Name", "Model", "Deployments", "Ready", "Rollout", "Sidecars", "Age"]
    # kubectl prints priority-0 columns; the sidecar count only with -o wide (sidecar mode).
    table = cluster.table(ROUTE_API, "ModelRoute", namespace)
    assert [c["name"] for c in table["columnDefinitions"] if c["priority"] == 0] == [
        "Name",
        "Model",
        "Deployments",
        "Ready",
        "Rollout",
        "Age",
    ]


async def test_invalid_route_still_shows_its_deployments(
    cluster: Cluster, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Admitted (no CEL rule covers it) but left out by the operator: its API key's Secret does
    # not exist. (A fallback to an unknown model no longer leaves a route out: it degrades it.)
    keyed = {
        "name": "b",
        "provider": "openai",
        "baseUrl": "https://api.openai.com/v1",
        "upstreamModel": "gpt-4o",
        "apiKeySecretRef": {"name": "missing", "key": "api-key"},
    }
    cluster.apply(route("lost", "gpt-4o", mock_deployment("a"), keyed), namespace)
    async with operator_on(cluster, operator_settings(namespace), monkeypatch):
        await eventually(lambda: route_status(cluster, namespace, "lost").get("deploymentNames"), what="status written")
        rows = _cells(cluster, namespace)
    assert rows["lost"]["Deployments"] == "a,b" and rows["lost"]["Ready"] == "False"
