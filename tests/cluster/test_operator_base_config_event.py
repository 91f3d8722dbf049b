"""A base config the operator refuses (invalid YAML or schema) is a Warning Event on its ConfigMap,
once per refused version, and the chart's RBAC allows posting it in both scopes (all namespaces,
or operator.watchNamespaces)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from chart_helm import render
from cluster_operator import eventually, mock_deployment, operator_on, operator_settings, route, route_status
from kube_cluster import Cluster
from modelgate_operator.kube.client import KubeClient


def _base(limit: int | str) -> str:
    return ("apiVersion: config.modelgate.dev/v1alpha1\nkind: GatewayConfig\n"
            f"spec:\n  limits:\n    maxRequestBodyBytes: {limit}\n")


def _warnings(cluster: Cluster, namespace: str, name: str) -> list[dict[str, Any]]:
    events = cluster.request("GET", f"/api/v1/namespaces/{namespace}/events")["items"]
    return [e for e in events if e["involvedObject"].get("name") == name and e["reason"] == "BaseConfigRejected"]


async def test_refused_base_config_is_a_warning_event_on_its_configmap(
        cluster: Cluster, namespace: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    base_file = tmp_path / "base.yaml"
    base_file.write_text(_base(4096))
    configmap = cluster.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "base"},
                               "data": {"base.yaml": _base(4096)}}, namespace)
    settings = operator_settings(namespace, base_config=str(base_file), base_config_configmap=(namespace, "base"))
    cluster.apply(route("r", "m", mock_deployment("a")), namespace)
    async with operator_on(cluster, settings, monkeypatch):
        await eventually(lambda: route_status(cluster, namespace, "r").get("observedGeneration") == 1,
                         what="the route reconciled")
        base_file.write_text(_base("lots"))
        cluster.apply(route("r", "m", mock_deployment("a"), mock_deployment("b")), namespace)  # a pass
        events = await eventually(lambda: _warnings(cluster, namespace, "base"), what="the Warning Event")
        # Later passes (another change) do not repeat it: once per refused version.
        cluster.apply(route("r", "m", mock_deployment("b")), namespace)
        await eventually(lambda: route_status(cluster, namespace, "r").get("observedGeneration") == 3,
                         what="the next change reconciled")
    assert len(_warnings(cluster, namespace, "base")) == 1
    event = events[0]
    assert event["type"] == "Warning"
    assert event["involvedObject"] == {"apiVersion": "v1", "kind": "ConfigMap", "name": "base",
                                       "namespace": namespace, "uid": configmap["metadata"]["uid"]}
    assert "base config not applied, keeping the last good one" in event["message"]
    assert "maxRequestBodyBytes" in event["message"]


RBAC_KINDS = {"ServiceAccount", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"}


@pytest.mark.parametrize("scope", ["all-namespaces", "watch-namespaces"])
def test_chart_rbac_allows_the_base_config_event(cluster: Cluster, namespace: str, scope: str) -> None:
    release = f"r{namespace[-6:]}"  # cluster-scoped names stay unique per test
    sets = (f"operator.watchNamespaces={{{namespace}}}",) if scope == "watch-namespaces" else ()
    objects = render(sets=sets, release=release, namespace=namespace)
    ours = [copy.deepcopy(o) for o in objects if o["kind"] in RBAC_KINDS and "operator" in o["metadata"]["name"]]
    base = next(o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"].endswith("-operator-base-config"))
    created = cluster.apply_all([*ours, copy.deepcopy(base)], namespace)
    account = next(o for o in ours if o["kind"] == "ServiceAccount")["metadata"]["name"]
    token = cluster.service_account_token(namespace, account, create=False)

    deployment = next(o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"].endswith("-operator"))
    env = {e["name"]: e.get("value") for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    ns, name = env["MODELGATE_OPERATOR_BASE_CONFIG_CONFIGMAP"].split("/")
    settings = operator_settings(namespace, base_config_configmap=(ns, name))
    KubeClient(settings, cluster.api_client(token=token)).post_base_config_warning("test: refused", "2026-01-01T00:00:00Z")

    [event] = _warnings(cluster, namespace, name)
    assert event["involvedObject"]["uid"] == created[-1]["metadata"]["uid"]  # get was allowed too
