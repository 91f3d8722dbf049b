"""The chart honours docs/architecture.md: process flags, ports, mounts, object names, operator
environment, and the base config document (valid for the gateway's own schema)."""

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from chart_helm import CHART, CI_VALUES, find, kinds, render
from modelgate_gateway.config import validate_data


def _as_the_operator_fills_it(document: dict[str, Any]) -> dict[str, Any]:
    """The base plus one mock model per name the keys' allowlists mention: the gateway rejects
    allowlists naming models the document does not serve, and the operator adds the models."""
    names = sorted({m for k in document["spec"]["auth"]["keys"] for m in k["models"] if m != "*"})
    spec = dict(document["spec"])
    spec["deployments"] = [{"name": "mock", "provider": "mock", "model": "mock"}] if names else []
    spec["models"] = [{"name": n, "targets": [{"deployment": "mock"}]} for n in names]
    return {**document, "spec": spec}


def _gateway(objects: tuple[dict[str, Any], ...]) -> dict[str, Any]:
    return find(objects, "Deployment", "modelgate-gateway")["spec"]["template"]["spec"]


def _base_config(objects: tuple[dict[str, Any], ...]) -> dict[str, Any]:
    config_map = find(objects, "ConfigMap", "modelgate-operator-base-config")
    return yaml.safe_load(config_map["data"]["base.yaml"])


def test_gateway_args_follow_the_contract() -> None:
    container = _gateway(render())["containers"][0]
    assert container["args"] == [
        "--config",
        "/etc/modelgate/config/index.json",
        "--secrets-dir",
        "/etc/modelgate/secrets",
        "--host",
        "0.0.0.0",
        "--port",
        "4000",
        "--metrics-host",
        "0.0.0.0",
        "--metrics-port",
        "9090",
        "--shutdown-grace-seconds",
        "25",
        "--reload-interval-seconds",
        "2",
        "--client-header-timeout-seconds",
        "10",
        "--client-body-timeout-seconds",
        "60",
        "--client-idle-timeout-seconds",
        "75",
        "--max-client-connections",
        "8192",
        "--workers",
        "1",
        "--log-level",
        "info",
        "--kube-configmap",
        "$(POD_NAMESPACE)/modelgate-gateway-config",
        "--kube-secret",
        "$(POD_NAMESPACE)/modelgate-gateway-upstream-keys",
    ]
    env = {e["name"]: e for e in container["env"]}
    assert env["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    assert "command" not in container  # the image's ENTRYPOINT is modelgate-gateway


def test_kube_watch_off_drops_the_api_flags() -> None:
    args = _gateway(render(sets=("gateway.kubeWatch=false",)))["containers"][0]["args"]
    assert "--kube-configmap" not in args and "--kube-secret" not in args


def test_gateway_ports_and_services() -> None:
    objects = render()
    ports = {p["name"]: p["containerPort"] for p in _gateway(objects)["containers"][0]["ports"]}
    assert ports == {"http": 4000, "metrics": 9090}
    service = find(objects, "Service", "modelgate-gateway")["spec"]["ports"]
    assert service == [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]
    metrics = find(objects, "Service", "modelgate-gateway-metrics")["spec"]["ports"]
    assert metrics == [{"name": "metrics", "port": 9090, "targetPort": "metrics", "protocol": "TCP"}]


@pytest.mark.parametrize("values", CI_VALUES, ids=lambda p: p.name)
def test_gateway_mounts_whole_volumes_at_the_contract_paths(values: Path) -> None:
    spec = _gateway(render((values,)))
    mounts = {m["name"]: m for m in spec["containers"][0]["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["volumes"]}
    expected = {
        "config": "/etc/modelgate/config",
        "upstream-keys": "/etc/modelgate/secrets",
        "api-keys": "/etc/modelgate/api-keys",
        "response-ids": "/etc/modelgate/response-ids",
        "tmp": "/tmp",
    }
    if "redis" in values.name:  # a Redis with a password: the Secret holding it
        expected["redis-password"] = "/etc/modelgate/redis"
    assert {name: m["mountPath"] for name, m in mounts.items()} == expected
    assert all("subPath" not in m and "subPathExpr" not in m for m in mounts.values())
    # One directory each for every ConfigMap and every Secret the operator may write (all optional).
    config = volumes["config"]["projected"]["sources"]
    assert config == [{"configMap": {"name": "modelgate-gateway-config", "optional": True}}] + [
        {"configMap": {"name": f"modelgate-gateway-config-{i}", "optional": True}} for i in range(32)
    ]
    keys = volumes["upstream-keys"]["projected"]
    assert keys["sources"] == [{"secret": {"name": "modelgate-gateway-upstream-keys", "optional": True}}] + [
        {"secret": {"name": f"modelgate-gateway-upstream-keys-{i}", "optional": True}} for i in range(1, 32)
    ]
    assert keys["defaultMode"] == 0o440


def test_operator_environment_follows_the_contract() -> None:
    spec = find(render(), "Deployment", "modelgate-operator")["spec"]["template"]["spec"]
    container = spec["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env == {
        "POD_NAMESPACE": None,
        "POD_ID": None,
        "MODELGATE_OPERATOR_GATEWAY_NAME": "modelgate",
        "MODELGATE_OPERATOR_GATEWAY_NAMESPACE": "modelgate",
        "MODELGATE_OPERATOR_CONFIGMAP": "modelgate-gateway-config",
        "MODELGATE_OPERATOR_SECRET": "modelgate-gateway-upstream-keys",
        "MODELGATE_OPERATOR_GATEWAY_DEPLOYMENT": "modelgate-gateway",
        "MODELGATE_OPERATOR_GATEWAY_POD_SELECTOR": (
            "app.kubernetes.io/name=modelgate,app.kubernetes.io/instance=modelgate,app.kubernetes.io/component=gateway"
        ),
        "MODELGATE_OPERATOR_BASE_CONFIG": "/etc/modelgate-operator/base.yaml",
        "MODELGATE_OPERATOR_BASE_CONFIG_CONFIGMAP": "modelgate/modelgate-operator-base-config",
        "MODELGATE_OPERATOR_NAMESPACES": "",
        "MODELGATE_OPERATOR_ENDPOINTSLICE_NAMESPACES": "",
        "MODELGATE_OPERATOR_PEERING": "modelgate",
        "MODELGATE_OPERATOR_MAX_SHARDS": "32",
        "MODELGATE_OPERATOR_LIVENESS_HOST": "0.0.0.0",
        "MODELGATE_OPERATOR_LIVENESS_PORT": "8080",
    }
    assert container["volumeMounts"][0] == {
        "name": "base-config",
        "mountPath": "/etc/modelgate-operator",
        "readOnly": True,
    }
    volume = next(v for v in spec["volumes"] if v["name"] == "base-config")
    assert volume["configMap"]["name"] == "modelgate-operator-base-config"
    assert find(render(), "Deployment", "modelgate-operator")["spec"]["replicas"] == 1
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "healthz"}
    assert container["ports"] == [{"name": "healthz", "containerPort": 8080, "protocol": "TCP"}]


def test_operator_liveness_endpoint_port_and_probe_move_together() -> None:
    objects = render(sets=("operator.liveness.port=18080", "operator.liveness.host=::"))
    container = find(objects, "Deployment", "modelgate-operator")["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert (env["MODELGATE_OPERATOR_LIVENESS_HOST"], env["MODELGATE_OPERATOR_LIVENESS_PORT"]) == ("::", "18080")
    assert container["ports"] == [{"name": "healthz", "containerPort": 18080, "protocol": "TCP"}]
    assert container["livenessProbe"]["httpGet"]["port"] == "healthz"


def test_operator_restarts_when_the_base_config_changes() -> None:
    def checksum(objects: tuple[dict[str, Any], ...]) -> str:
        deployment = find(objects, "Deployment", "modelgate-operator")
        return str(deployment["spec"]["template"]["metadata"]["annotations"]["checksum/base-config"])

    assert checksum(render()) != checksum(render(sets=("gateway.config.observability.endUserLabelLimit=7",)))


@pytest.mark.parametrize("values", CI_VALUES, ids=lambda p: p.name)
def test_base_config_is_valid_for_the_gateway(values: Path) -> None:
    objects = render((values,))
    document = _base_config(objects)
    assert document["spec"]["deployments"] == [] and document["spec"]["models"] == []
    config = validate_data(_as_the_operator_fills_it(document), source="base.yaml")
    if all(k["models"] == ["*"] for k in document["spec"]["auth"]["keys"]):
        validate_data(document, source="base.yaml")  # valid on its own before any route exists
    # Every file the document names is inside a Secret the gateway mounts, under a key it holds.
    mounts = {m["mountPath"]: m["name"] for m in _gateway(objects)["containers"][0]["volumeMounts"]}
    volumes = {v["name"]: v for v in _gateway(objects)["volumes"]}
    files = [k.value_from.file for k in config.spec.auth.keys]
    files.append(config.spec.response_ids.signing_key.file)
    if config.spec.state.redis_password is not None:
        files.append(config.spec.state.redis_password.file)
    for path in files:
        directory, key = path.rsplit("/", 1)
        volume = volumes[mounts[directory]]
        secret_name = volume["secret"]["secretName"]
        generated = [s for s in kinds(objects, "Secret") if s["metadata"]["name"] == secret_name]
        if generated:
            assert key in generated[0]["data"], (path, secret_name)


def test_base_config_carries_key_names_allowlists_and_policy() -> None:
    values = next(p for p in CI_VALUES if "custom-keys" in p.name)
    document = _base_config(
        render(
            (values,),
            sets=(
                "gateway.config.limits.maxRequestBodyBytes=1048576",
                "gateway.config.observability.endUserHeader=",
                "gateway.config.observability.requestLog.includeContent=true",
            ),
        )
    )
    spec = document["spec"]
    assert spec["auth"]["keys"] == [
        {
            "name": "team-a",
            "models": ["gpt-4o", "gpt-4o-mini"],
            "valueFrom": {"file": "/etc/modelgate/api-keys/team-a"},
        },
        {
            "name": "batch.jobs",
            "models": ["*"],
            "valueFrom": {"file": "/etc/modelgate/api-keys/batch.jobs"},
            "tenant": "data-platform",
        },
    ]
    assert spec["responseIds"] == {"signingKey": {"file": "/etc/modelgate/response-ids/signing-key"}}
    assert spec["limits"] == {"maxRequestBodyBytes": 1048576}
    assert spec["observability"]["endUserHeader"] is None
    assert spec["observability"]["requestLog"] == {"enabled": True, "includeContent": True}
    validate_data(_as_the_operator_fills_it(document))


def test_tracing_is_off_unless_enabled_and_then_reaches_the_base_config() -> None:
    assert "tracing" not in _base_config(render())["spec"]["observability"]
    document = _base_config(
        render(
            sets=(
                "gateway.config.observability.tracing.enabled=true",
                "gateway.config.observability.tracing.endpoint=http://otel-collector.observability:4318/v1/traces",
            )
        )
    )
    assert document["spec"]["observability"]["tracing"] == {
        "enabled": True,
        "endpoint": "http://otel-collector.observability:4318/v1/traces",
        "serviceName": "modelgate-gateway",
        "sampleRatio": 1.0,
    }
    validate_data(_as_the_operator_fills_it(document))


def test_generated_secrets_hold_random_keys_and_existing_secrets_are_used_as_named() -> None:
    objects = render()
    keys = find(objects, "Secret", "modelgate-gateway-api-keys")["data"]
    assert set(keys) == {"default"}
    signing = find(objects, "Secret", "modelgate-gateway-signing-key")["data"]
    assert set(signing) == {"signing-key"}
    again = find(render(sets=("commonLabels.rerender=yes",)), "Secret", "modelgate-gateway-api-keys")
    assert again["data"]["default"] != keys["default"]  # random per install (lookup keeps it on upgrade)
    custom = render((next(p for p in CI_VALUES if "custom-keys" in p.name),))
    volumes = {v["name"]: v for v in _gateway(custom)["volumes"]}
    assert volumes["api-keys"]["secret"]["secretName"] == "team-gateway-keys"
    assert volumes["response-ids"]["secret"]["secretName"] == "team-response-id-key"


def test_generated_secrets_are_kept_across_upgrades_with_lookup() -> None:
    for name in ("gateway-apikeys-secret.yaml", "gateway-signing-key-secret.yaml"):
        text = (CHART / "templates" / name).read_text()
        assert 'lookup "v1" "Secret" .Release.Namespace $name' in text, name


def test_hpa_replaces_the_replica_count() -> None:
    objects = render((next(p for p in CI_VALUES if "hpa-on" in p.name),))
    assert "replicas" not in find(objects, "Deployment", "modelgate-gateway")["spec"]
    hpa = find(objects, "HorizontalPodAutoscaler", "modelgate-gateway")
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "modelgate-gateway",
    }
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 12)
    assert {m["resource"]["name"] for m in hpa["spec"]["metrics"]} == {"cpu", "memory"}
    assert find(objects, "PodDisruptionBudget", "modelgate-gateway")["spec"]["minAvailable"] == 2
    assert kinds(render(), "HorizontalPodAutoscaler") == []
    assert kinds(render(sets=("gateway.podDisruptionBudget.enabled=false",)), "PodDisruptionBudget") == []


def test_service_monitor_needs_the_api_or_force() -> None:
    assert kinds(render(sets=("gateway.metrics.serviceMonitor.enabled=true",)), "ServiceMonitor") == []
    for api in ("monitoring.coreos.com/v1", "monitoring.coreos.com/v1/ServiceMonitor"):
        detected = render(sets=("gateway.metrics.serviceMonitor.enabled=true",), api_versions=(api,))
        assert len(kinds(detected, "ServiceMonitor")) == 1
    assert kinds(render(api_versions=("monitoring.coreos.com/v1",)), "ServiceMonitor") == []
    objects = render((next(p for p in CI_VALUES if "servicemonitor-on" in p.name),))
    monitor = find(objects, "ServiceMonitor", "modelgate-gateway")
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= find(objects, "Service", "modelgate-gateway-metrics")["metadata"]["labels"].items()
    assert not selector.items() <= find(objects, "Service", "modelgate-gateway")["metadata"]["labels"].items()
    assert monitor["spec"]["endpoints"] == [
        {"port": "metrics", "path": "/metrics", "interval": "15s", "scrapeTimeout": "10s"}
    ]
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"


def test_image_tag_defaults_to_app_version_and_digest_pins() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    spec = _gateway(render())
    assert spec["containers"][0]["image"] == f"ghcr.io/modelgate/gateway:{chart['appVersion']}"
    digest = "sha256:" + "a" * 64
    pinned = render(sets=("operator.image.tag=1.2.3", f"operator.image.digest={digest}"))
    operator = find(pinned, "Deployment", "modelgate-operator")["spec"]["template"]["spec"]
    assert operator["containers"][0]["image"] == f"ghcr.io/modelgate/operator:1.2.3@{digest}"


def test_helm_test_pod_calls_readyz_through_the_service() -> None:
    pod = find(render(), "Pod", "modelgate-gateway-test-readyz")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    assert pod["spec"]["restartPolicy"] == "Never"
    script = pod["spec"]["containers"][0]["args"][0]
    assert "http://modelgate-gateway.modelgate.svc:80/readyz" in script
    compile(script, "test-readyz", "exec")
    assert kinds(render(sets=("tests.enabled=false",)), "Pod") == []


def test_dashboards_become_sidecar_configmaps(tmp_path: Path) -> None:
    chart = tmp_path / "modelgate"
    shutil.copytree(CHART, chart, ignore=shutil.ignore_patterns("ci"))
    for stale in (chart / "dashboards").glob("*.json"):
        stale.unlink()
    dashboard = '{"title": "ModelGate <overview> & spend", "panels": []}\n'
    (chart / "dashboards" / "modelgate_overview.json").write_text(dashboard)
    (chart / "dashboards" / "spend.json").write_text('{"title": "Spend"}')
    objects = render(chart=chart, sets=("dashboards.annotations.grafana_folder=ModelGate",))
    maps = {m["metadata"]["name"]: m for m in kinds(objects, "ConfigMap")}
    overview = maps["modelgate-dashboard-modelgate-overview"]
    assert overview["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert overview["metadata"]["annotations"] == {"grafana_folder": "ModelGate"}
    assert overview["data"] == {"modelgate_overview.json": dashboard}
    assert maps["modelgate-dashboard-spend"]["data"] == {"spend.json": '{"title": "Spend"}'}
    relabelled = render(chart=chart, sets=("dashboards.label=dash", "dashboards.labelValue=yes"))
    assert all(
        m["metadata"]["labels"].get("dash") == "yes"
        for m in kinds(relabelled, "ConfigMap")
        if "dashboard" in m["metadata"]["name"]
    )
    off = render(chart=chart, sets=("dashboards.enabled=false",))
    assert [m["metadata"]["name"] for m in kinds(off, "ConfigMap")] == ["modelgate-operator-base-config"]


def test_chart_dashboards_are_all_rendered() -> None:
    files = sorted((CHART / "dashboards").glob("*.json"))
    maps = [m for m in kinds(render(), "ConfigMap") if m["metadata"]["labels"].get("grafana_dashboard") == "1"]
    rendered = sorted(key for m in maps for key in m["data"])
    assert rendered == [f.name for f in files]
    for config_map in maps:
        for key, text in config_map["data"].items():
            assert text == (CHART / "dashboards" / key).read_text()


def test_golden_renders_start_from_the_charts_default_base() -> None:
    """tests/contract/golden/base.yaml is the chart's default base document, so the goldens show
    what a route becomes in a default install."""
    golden_base = Path(__file__).resolve().parents[1] / "contract" / "golden" / "base.yaml"
    assert yaml.safe_load(golden_base.read_text())["spec"] == _base_config(render())["spec"]
