"""The cluster fixture itself: a real API server, RBAC, the controller-manager, the repo's CRDs."""

from __future__ import annotations

import subprocess
from pathlib import Path

import kubernetes
import pytest

from kube_cluster import ApiError, Cluster


def test_admin_client_sees_the_namespace_and_its_default_service_account(cluster: Cluster, namespace: str) -> None:
    core = kubernetes.client.CoreV1Api(cluster.api_client())
    assert core.read_namespace(namespace).status.phase == "Active"
    version = kubernetes.client.VersionApi(cluster.api_client()).get_code()
    assert version.major == "1" and version.git_version.startswith("v1.")

    # The controller-manager creates `default` in every new namespace (bounded poll inside).
    cluster.wait_for_service_account(namespace, "default")
    token = cluster.service_account_token(namespace, "default", create=False)
    assert token.count(".") == 2  # a JWT


def test_modelroute_crd_is_served_and_validates(cluster: Cluster, namespace: str) -> None:
    route = {
        "apiVersion": "modelgate.dev/v1alpha1", "kind": "ModelRoute",
        "metadata": {"name": "smoke"},
        "spec": {"model": "gpt-4o", "deployments": [{"name": "mock", "provider": "mock", "upstreamModel": "canned"}]},
    }
    created = cluster.apply(route, namespace)
    assert created["metadata"]["uid"]
    with pytest.raises(ApiError) as err:
        cluster.apply({**route, "metadata": {"name": "bad"}, "spec": {"model": "gpt-4o"}}, namespace)
    assert err.value.status == 422
    assert "spec.deployments: Required value" in err.value.message


def test_service_account_tokens_are_subject_to_rbac(cluster: Cluster, namespace: str) -> None:
    token = cluster.service_account_token(namespace, "reader")
    with pytest.raises(ApiError) as err:
        cluster.request("GET", f"/api/v1/namespaces/{namespace}/configmaps", token=token)
    assert err.value.status == 403
    assert f"system:serviceaccount:{namespace}:reader" in err.value.message

    cluster.apply_all([
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "visible"}, "data": {"a": "b"}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "read-cm"},
         "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["list"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "read-cm"},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "read-cm"},
         "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": namespace}]},
    ], namespace)
    listed = kubernetes.client.CoreV1Api(cluster.api_client(token=token)).list_namespaced_config_map(namespace)
    assert "visible" in {cm.metadata.name for cm in listed.items}


def test_kubeconfig_works_for_kubectl(cluster: Cluster, namespace: str, tmp_path: Path) -> None:
    kubectl = cluster.plane.assets / "kubectl"
    if not kubectl.exists():
        pytest.skip("no kubectl in KUBEBUILDER_ASSETS")
    out = subprocess.run(
        [str(kubectl), "--kubeconfig", str(cluster.kubeconfig), "--cache-dir", str(tmp_path / "cache"),
         "get", "namespace", namespace, "-o", "name"],
        capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"namespace/{namespace}"
