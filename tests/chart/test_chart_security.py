"""Production defaults on the rendered pods: non-root, read-only root, no capabilities, seccomp,
resources, probes, a rollout that never drops below the desired replicas, a grace period that
covers preStop + drain + the gateway's exit after it."""

import json
from pathlib import Path
from typing import Any

import pytest

from chart_helm import CHART, CI_VALUES, find, kinds, render
from modelgate_gateway.server.draining import SHUTDOWN_OVERRUN_SECONDS

SCHEMA = json.loads((CHART / "values.schema.json").read_text())


def _pods(objects: tuple[dict[str, Any], ...]) -> list[tuple[str, dict[str, Any]]]:
    specs = [(d["metadata"]["name"], d["spec"]["template"]["spec"]) for d in kinds(objects, "Deployment")]
    specs += [(p["metadata"]["name"], p["spec"]) for p in kinds(objects, "Pod")]
    return specs


@pytest.mark.parametrize("values", CI_VALUES, ids=lambda p: p.name)
def test_every_container_is_locked_down(values: Path) -> None:
    pods = _pods(render((values,)))
    assert len(pods) == (4 if "redis-installed" in values.name else 3)  # gateway, operator, test (, redis)
    for name, spec in pods:
        pod_sc = spec["securityContext"]
        assert pod_sc["runAsNonRoot"] is True, name
        assert pod_sc["runAsUser"] > 0, name
        assert pod_sc["seccompProfile"] == {"type": "RuntimeDefault"}, name
        for container in spec["containers"]:
            sc = container["securityContext"]
            assert sc["runAsNonRoot"] is True, name
            assert sc["readOnlyRootFilesystem"] is True, name
            assert sc["allowPrivilegeEscalation"] is False, name
            assert sc["privileged"] is False, name
            assert sc["capabilities"] == {"drop": ["ALL"]}, name
            assert sc["seccompProfile"] == {"type": "RuntimeDefault"}, name
            resources = container["resources"]
            assert {"cpu", "memory"} <= resources["requests"].keys(), name
            assert "memory" in resources["limits"], name
            assert not any("subPath" in m for m in container.get("volumeMounts", [])), name


def test_gateway_probes_use_the_health_endpoints() -> None:
    container = find(render(), "Deployment", "modelgate-gateway")["spec"]["template"]["spec"]["containers"][0]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}


@pytest.mark.parametrize("values", CI_VALUES, ids=lambda p: p.name)
def test_gateway_rollout_never_drops_below_desired_replicas(values: Path) -> None:
    deployment = find(render((values,)), "Deployment", "modelgate-gateway")
    strategy = deployment["spec"]["strategy"]
    assert strategy["type"] == "RollingUpdate"
    assert strategy["rollingUpdate"]["maxUnavailable"] == 0


def _covers_prestop_and_drain(spec: dict[str, Any]) -> None:
    """SIGKILL comes after terminationGracePeriodSeconds, counted from the preStop hook's start:
    the gateway must have drained (grace) and exited (at most SHUTDOWN_OVERRUN_SECONDS more)."""
    container = spec["containers"][0]
    args = container["args"]
    drain = float(args[args.index("--shutdown-grace-seconds") + 1])
    sleep = int(container["lifecycle"]["preStop"]["exec"]["command"][1])
    assert container["lifecycle"]["preStop"]["exec"]["command"][0] == "sleep"
    assert sleep > 0
    assert spec["terminationGracePeriodSeconds"] >= sleep + drain + SHUTDOWN_OVERRUN_SECONDS


@pytest.mark.parametrize("values", CI_VALUES, ids=lambda p: p.name)
def test_grace_period_covers_prestop_sleep_drain_and_exit(values: Path) -> None:
    _covers_prestop_and_drain(find(render((values,)), "Deployment", "modelgate-gateway")["spec"]["template"]["spec"])


def test_grace_period_follows_the_drain_setting() -> None:
    spec = find(
        render(sets=("gateway.shutdownGraceSeconds=100", "gateway.preStopSleepSeconds=7")),
        "Deployment",
        "modelgate-gateway",
    )["spec"]["template"]["spec"]
    assert spec["terminationGracePeriodSeconds"] == 100 + 7 + 5
    _covers_prestop_and_drain(spec)


def test_the_smallest_margin_the_schema_allows_still_covers_the_exit() -> None:
    minimum = SCHEMA["properties"]["gateway"]["properties"]["terminationGraceMarginSeconds"]["minimum"]
    assert minimum >= SHUTDOWN_OVERRUN_SECONDS
    spec = find(render(sets=(f"gateway.terminationGraceMarginSeconds={minimum}",)), "Deployment", "modelgate-gateway")[
        "spec"
    ]["template"]["spec"]
    _covers_prestop_and_drain(spec)


def test_gateway_spreads_across_nodes_and_zones_by_default() -> None:
    spec = find(render(), "Deployment", "modelgate-gateway")["spec"]["template"]["spec"]
    keys = {c["topologyKey"] for c in spec["topologySpreadConstraints"]}
    assert keys == {"kubernetes.io/hostname", "topology.kubernetes.io/zone"}
    for constraint in spec["topologySpreadConstraints"]:
        assert constraint["labelSelector"]["matchLabels"]["app.kubernetes.io/component"] == "gateway"


def test_service_account_tokens_are_mounted_only_where_needed() -> None:
    objects = render()
    for account in kinds(objects, "ServiceAccount"):
        assert account["automountServiceAccountToken"] is False
    test_pod = find(objects, "Pod", "modelgate-gateway-test-readyz")
    assert test_pod["spec"]["automountServiceAccountToken"] is False
    without_watch = render(sets=("gateway.kubeWatch=false",))
    spec = find(without_watch, "Deployment", "modelgate-gateway")["spec"]["template"]["spec"]
    assert spec["automountServiceAccountToken"] is False
    slices = render(sets=("gateway.kubeWatch=false", "gateway.rbac.endpointSliceNamespaces={models}"))
    spec = find(slices, "Deployment", "modelgate-gateway")["spec"]["template"]["spec"]
    assert spec["automountServiceAccountToken"] is True  # it follows the EndpointSlices of serviceRef routes


def test_no_secret_value_appears_in_values_or_configmaps() -> None:
    custom = next(p for p in CI_VALUES if "custom-keys" in p.name)
    for obj in render((custom,)):
        assert obj["kind"] != "Secret"
    for config_map in kinds(render(), "ConfigMap"):
        text = str(config_map["data"])
        assert "sk-" not in text
