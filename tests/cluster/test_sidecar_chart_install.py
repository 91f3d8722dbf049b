"""`helm install` of the chart on a real API server: with sidecar.enabled the injector's objects
are created (the server validates them, match-condition CEL included) and, with no operator
running behind the webhook Service yet, a pod that asks for the sidecar is still created; without
it, none of the injector exists."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from chart_helm import CHART, run_helm
from kube_cluster import ApiError, Cluster
from sidecar_cluster import WEBHOOKS_API, fresh_namespaces, wait_until


@pytest.fixture()
def namespaces(cluster: Cluster) -> Iterator[tuple[str, ...]]:
    with fresh_namespaces(cluster, "mg-release", "team-a") as names:
        yield names


def _install(cluster: Cluster, release: str, namespace: str, *sets: str) -> None:
    args = [
        "install",
        release,
        CHART,
        "--namespace",
        namespace,
        "--kubeconfig",
        cluster.kubeconfig,
        "--set",
        "tests.enabled=false",
    ]
    for item in sets:
        args += ["--set", item]
    result = run_helm(*args)
    assert result.returncode == 0, result.stdout + result.stderr


def _uninstall(cluster: Cluster, release: str, namespace: str) -> None:
    run_helm("uninstall", release, "--namespace", namespace, "--kubeconfig", cluster.kubeconfig)


def _exists(cluster: Cluster, api: str, kind: str, name: str, namespace: str | None = None) -> bool:
    try:
        cluster.get(api, kind, name, namespace)
    except ApiError as exc:
        if exc.status == 404:
            return False
        raise
    return True


def test_the_chart_installs_the_injector_only_with_sidecar_enabled(
    cluster: Cluster, namespaces: tuple[str, ...]
) -> None:
    release_ns, team_a = namespaces
    with_sidecar, without = f"s{release_ns[-6:]}", f"p{release_ns[-6:]}"
    _install(cluster, without, release_ns, "gateway.podDisruptionBudget.enabled=false")
    try:
        assert not _exists(
            cluster, WEBHOOKS_API, "MutatingWebhookConfiguration", f"{without}-modelgate-sidecar-injector"
        )
        assert not _exists(cluster, "rbac.authorization.k8s.io/v1", "ClusterRole", f"{without}-modelgate-sidecar")
        assert not _exists(cluster, "v1", "Service", f"{without}-modelgate-webhook", release_ns)
    finally:
        _uninstall(cluster, without, release_ns)
    _install(
        cluster,
        with_sidecar,
        release_ns,
        "sidecar.enabled=true",
        f"operator.watchNamespaces={{{team_a}}}",
        "gateway.podDisruptionBudget.enabled=false",
    )
    try:
        prefix = f"{with_sidecar}-modelgate"
        configuration = cluster.get(WEBHOOKS_API, "MutatingWebhookConfiguration", f"{prefix}-sidecar-injector")
        assert [w["failurePolicy"] for w in configuration["webhooks"]] == ["Ignore", "Ignore"]
        assert _exists(cluster, "v1", "Service", f"{prefix}-webhook", release_ns)
        assert _exists(cluster, "rbac.authorization.k8s.io/v1", "ClusterRole", f"{prefix}-sidecar")
        assert _exists(cluster, "rbac.authorization.k8s.io/v1", "Role", f"{prefix}-operator-sidecar", team_a)
        # Nothing serves the webhook yet (no kubelet runs the operator): pods are created anyway.
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "asks", "annotations": {"modelgate.dev/inject": "true"}},
            "spec": {"containers": [{"name": "app", "image": "example.com/app:1"}]},
        }
        created = wait_until(lambda: _create(cluster, team_a, pod), 20, "the pod is created")
        assert "initContainers" not in created["spec"]
    finally:
        _uninstall(cluster, with_sidecar, release_ns)


def _create(cluster: Cluster, namespace: str, pod: dict) -> dict | None:
    try:
        return dict(cluster.request("POST", f"/api/v1/namespaces/{namespace}/pods", pod, timeout=20))
    except ApiError as exc:
        if exc.status == 409:  # created by an earlier attempt whose answer was lost
            return dict(cluster.get("v1", "Pod", pod["metadata"]["name"], namespace))
        raise
