"""helm lint --strict and helm template over every ci/*-values.yaml scenario; every rendered
object (CRDs included) is valid for Kubernetes 1.33."""

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from chart_helm import CHART, CI_VALUES, NAMESPACE, find, render, run_helm
from chart_kube import validate

SCENARIOS = {p.name.removesuffix("-values.yaml"): p for p in CI_VALUES}


def test_the_ci_scenarios_cover_the_documented_cases() -> None:
    assert set(SCENARIOS) >= {
        "defaults",
        "hpa-on",
        "servicemonitor-on",
        "custom-keys-secret",
        "multiple-replicas",
        "restricted-namespaces",
        "sidecar-on",
        "sidecar-cert-manager",
    }


@pytest.mark.parametrize("values", CI_VALUES, ids=lambda p: p.name)
def test_lint_strict_passes(values: Path) -> None:
    result = run_helm("lint", "--strict", CHART, "--namespace", NAMESPACE, "--values", values)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "[WARNING]" not in result.stdout and "[ERROR]" not in result.stdout


@pytest.mark.parametrize("values", CI_VALUES, ids=lambda p: p.name)
def test_every_rendered_object_is_valid_kubernetes(values: Path) -> None:
    objects = render((values,), include_crds=True)
    assert objects
    errors = []
    for obj in objects:
        try:
            validate(obj)
        except Exception as exc:  # collect every invalid object, not just the first
            errors.append(f"{obj['kind']}/{obj['metadata'].get('name')}: {exc}")
    assert errors == []


def test_the_validator_rejects_a_misspelled_field() -> None:
    deployment = dict(find(render(), "Deployment", "modelgate-gateway"))
    deployment["spec"] = {**deployment["spec"], "replica": 2}
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(deployment)


@pytest.mark.parametrize("values", CI_VALUES, ids=lambda p: p.name)
def test_namespaced_objects_land_in_the_release_namespace(values: Path) -> None:
    cluster_scoped = {
        "ClusterRole",
        "ClusterRoleBinding",
        "ClusterKopfPeering",
        "CustomResourceDefinition",
        "MutatingWebhookConfiguration",
    }
    watched = {"team-a", "team-b"}
    for obj in render((values,)):
        namespace = obj["metadata"].get("namespace")
        if obj["kind"] in cluster_scoped:
            assert namespace is None, obj["metadata"]
        elif obj["kind"] in {"KopfPeering", "Role", "RoleBinding"} and namespace in watched:
            assert obj["metadata"]["name"].startswith("modelgate")
        else:
            assert namespace == NAMESPACE, (obj["kind"], obj["metadata"])


def test_default_objects_have_the_contract_names() -> None:
    objects = render()
    dashboards = [o for o in objects if o["metadata"].get("labels", {}).get("grafana_dashboard") == "1"]
    assert len(dashboards) == len(list((CHART / "dashboards").glob("*.json")))
    names = {(o["kind"], o["metadata"]["name"]) for o in objects if o not in dashboards}
    assert names == {
        ("Deployment", "modelgate-gateway"),
        ("Service", "modelgate-gateway"),
        ("Service", "modelgate-gateway-metrics"),
        ("ServiceAccount", "modelgate-gateway"),
        ("Role", "modelgate-gateway"),
        ("RoleBinding", "modelgate-gateway"),
        ("PodDisruptionBudget", "modelgate-gateway"),
        ("Secret", "modelgate-gateway-api-keys"),
        ("Secret", "modelgate-gateway-signing-key"),
        ("Deployment", "modelgate-operator"),
        ("ServiceAccount", "modelgate-operator"),
        ("ClusterRole", "modelgate-operator"),
        ("ClusterRoleBinding", "modelgate-operator"),
        ("ClusterRole", "modelgate-modelgatekeys-edit"),
        ("ClusterRole", "modelgate-modelgatekeys-view"),
        ("Role", "modelgate-operator"),
        ("RoleBinding", "modelgate-operator"),
        ("ConfigMap", "modelgate-operator-base-config"),
        ("ClusterKopfPeering", "modelgate"),
        ("Pod", "modelgate-gateway-test-readyz"),
    }


def test_component_labels_select_the_right_pods() -> None:
    objects = render()
    gateway = find(objects, "Deployment", "modelgate-gateway")
    operator = find(objects, "Deployment", "modelgate-operator")
    assert gateway["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"] == "gateway"
    assert operator["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"] == "operator"
    pod_labels = gateway["spec"]["template"]["metadata"]["labels"]
    for service in ("modelgate-gateway", "modelgate-gateway-metrics"):
        selector = find(objects, "Service", service)["spec"]["selector"]
        assert selector.items() <= pod_labels.items()
    op_labels = operator["spec"]["template"]["metadata"]["labels"]
    assert not find(objects, "Service", "modelgate-gateway")["spec"]["selector"].items() <= op_labels.items()


def test_operator_reads_key_spend_from_the_gateways_redis_when_told() -> None:
    def env(objects: Any) -> dict[str, Any]:
        container = find(objects, "Deployment", "modelgate-operator")["spec"]["template"]["spec"]["containers"][0]
        return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}

    assert "MODELGATE_OPERATOR_REDIS_URL" not in env(render())
    found = env(render(sets=("keys.redisUrl=redis://redis.data:6379/0", "keys.redisPasswordSecret=redis-auth")))
    assert found["MODELGATE_OPERATOR_REDIS_URL"] == "redis://redis.data:6379/0"
    assert found["MODELGATE_OPERATOR_REDIS_PASSWORD"] == {"secretKeyRef": {"name": "redis-auth", "key": "password"}}
