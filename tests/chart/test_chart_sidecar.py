"""Sidecar mode in the chart: nothing of it when off; with sidecar.enabled the webhook configuration
(failure policy, timeout, namespace selector, match conditions evaluated with a CEL runtime), its
Service reaching the operator's webhook port, the sidecar template the operator reads, and the RBAC
of both the operator and the sidecars, asserted rule by rule."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from cel_expr_python import cel
from cel_expr_python.ext import ext_strings

from chart_helm import CHART, NAMESPACE, find, kinds, render, render_fails
from modelgate_operator.injection.template import SidecarTemplate
from modelgate_operator.rendering.layout import CONFIGMAP, SECRET, allowed_objects
from modelgate_operator.settings import OperatorSettings

ON = (CHART / "ci" / "sidecar-on-values.yaml",)
CERT_MANAGER = (CHART / "ci" / "sidecar-cert-manager-values.yaml",)
CEL = cel.NewEnv(variables={"object": cel.Type.DYN}, extensions=[ext_strings.ExtStrings()])
SIDECAR_NAMES = {
    "modelgate-sidecar-injector",
    "modelgate-webhook",
    "modelgate-sidecar",
    "modelgate-webhook-tls",
    "modelgate-sidecar-template",
    "modelgate-operator-sidecar",
    "modelgate-operator-webhook",
}


def _operator(objects: tuple[dict[str, Any], ...]) -> dict[str, Any]:
    container: dict[str, Any] = find(objects, "Deployment", "modelgate-operator")["spec"]["template"]["spec"][
        "containers"
    ][0]
    return container


def _rules(role: dict[str, Any]) -> list[tuple[tuple[str, ...], ...]]:
    return sorted(
        (
            tuple(r["apiGroups"]),
            tuple(r["resources"]),
            tuple(sorted(r.get("resourceNames", ()))),
            tuple(sorted(r["verbs"])),
        )
        for r in role["rules"]
    )


# Every object the operator's committer may write for a namespace's sidecars (shards included).
_OBJECTS = allowed_objects(
    OperatorSettings(configmap="modelgate-sidecar-config", secret="modelgate-sidecar-upstream-keys", max_shards=32)
)
CONFIGMAPS = tuple(sorted(n for kind, n in _OBJECTS if kind == CONFIGMAP))
SECRETS = tuple(sorted(n for kind, n in _OBJECTS if kind == SECRET))
NAMESPACE_RULES = [
    (("",), ("pods",), (), ("list", "watch")),
    (("",), ("configmaps", "secrets"), (), ("create",)),
    (("",), ("configmaps",), CONFIGMAPS, ("delete", "get", "patch")),
    (("",), ("secrets",), SECRETS, ("delete", "get", "patch")),
    (("rbac.authorization.k8s.io",), ("rolebindings",), (), ("create",)),
    (("rbac.authorization.k8s.io",), ("rolebindings",), ("modelgate-sidecar",), ("delete", "get", "patch")),
    (("rbac.authorization.k8s.io",), ("clusterroles",), ("modelgate-sidecar",), ("bind",)),
]
WEBHOOK_CONFIGURATION_RULE = (
    ("admissionregistration.k8s.io",),
    ("mutatingwebhookconfigurations",),
    ("modelgate-sidecar-injector",),
    ("get", "patch"),
)


def test_without_sidecar_enabled_nothing_of_it_is_rendered() -> None:
    objects = render()
    assert not [o for o in objects if o["metadata"]["name"] in SIDECAR_NAMES]
    assert not [o for o in objects if o["kind"] in {"MutatingWebhookConfiguration", "PodMonitor", "Certificate"}]
    operator = _operator(objects)
    assert not [e for e in operator["env"] if "SIDECAR" in e["name"] or "WEBHOOK" in e["name"]]
    assert [p["name"] for p in operator["ports"]] == ["healthz"] and "readinessProbe" not in operator
    # Not even with the PodMonitor asked for: it belongs to sidecar mode.
    assert not kinds(render(sets=("sidecar.podMonitor.enabled=true", "sidecar.podMonitor.force=true")), "PodMonitor")
    # Whatever else is rendered never names the injector, its webhook or the sidecars (only the
    # dashboard's text mentions them), so a sidecar object added later under another name is caught.
    mentions = [
        o["metadata"]["name"]
        for o in objects
        if re.search(r"sidecar|webhook|modelgate\.dev/inject", json.dumps(o), re.IGNORECASE)
        and o["metadata"]["name"] != "modelgate-dashboard-modelgate-overview"
    ]
    assert mentions == []
    # And every other sidecar.* setting changes nothing while sidecar.enabled is false.
    others = (
        "sidecar.webhook.certManager.enabled=true",
        "sidecar.webhook.failurePolicy=Fail",
        "sidecar.podMonitor.enabled=true",
        "sidecar.podMonitor.force=true",
        "sidecar.apiKeys.secretName=sidecar-keys",
        "sidecar.sharingNamespaces={platform}",
        "sidecar.port=4100",
    )
    assert _stable(render(sets=others)) == _stable(objects)


def _stable(objects: tuple[dict[str, Any], ...]) -> list[dict[str, Any]]:
    """The objects with generated Secret values (random per render) reduced to their keys."""
    return [{**o, "data": sorted(o.get("data") or {})} if o["kind"] == "Secret" else o for o in objects]


def test_the_webhook_configuration_is_safe_by_default() -> None:
    objects = render(sets=("sidecar.enabled=true",))
    configuration = find(objects, "MutatingWebhookConfiguration", "modelgate-sidecar-injector")
    assert [w["name"] for w in configuration["webhooks"]] == [
        "pods.sidecar.modelgate.dev",
        "namespace-pods.sidecar.modelgate.dev",
    ]
    for webhook in configuration["webhooks"]:
        assert webhook["failurePolicy"] == "Ignore"
        assert webhook["timeoutSeconds"] <= 5
        assert webhook["sideEffects"] == "NoneOnDryRun"
        assert "caBundle" not in webhook["clientConfig"]  # the operator writes it
        assert webhook["rules"] == [
            {
                "apiGroups": [""],
                "apiVersions": ["v1"],
                "operations": ["CREATE"],
                "resources": ["pods"],
                "scope": "Namespaced",
            }
        ]
        expressions = webhook["namespaceSelector"]["matchExpressions"]
        assert {
            "key": "kubernetes.io/metadata.name",
            "operator": "NotIn",
            "values": [NAMESPACE, "kube-system"],
        } in expressions
    by_name = {w["name"]: w for w in configuration["webhooks"]}
    assert by_name["pods.sidecar.modelgate.dev"]["clientConfig"]["service"]["path"] == "/mutate/pods"
    assert by_name["namespace-pods.sidecar.modelgate.dev"]["clientConfig"]["service"]["path"] == (
        "/mutate/namespace-pods"
    )
    assert {"key": "modelgate.dev/inject", "operator": "In", "values": ["enabled"]} in (
        by_name["namespace-pods.sidecar.modelgate.dev"]["namespaceSelector"]["matchExpressions"]
    )


@pytest.mark.parametrize(
    ("annotations", "asks", "namespace_pod"),
    [
        (None, False, True),
        ({}, False, True),
        ({"modelgate.dev/inject": "true"}, True, True),
        ({"modelgate.dev/inject": "True"}, True, True),
        ({"modelgate.dev/inject": "yes"}, True, True),  # sent, so the operator can refuse it with a reason
        ({"modelgate.dev/inject": "false"}, False, False),
        ({"modelgate.dev/inject": "FALSE"}, False, False),
        ({"other": "true"}, False, True),
    ],
)
def test_match_conditions_send_only_pods_that_ask(
    annotations: dict[str, str] | None, asks: bool, namespace_pod: bool
) -> None:
    configuration = find(
        render(sets=("sidecar.enabled=true",)), "MutatingWebhookConfiguration", "modelgate-sidecar-injector"
    )
    metadata: dict[str, Any] = {"name": "p"} if annotations is None else {"name": "p", "annotations": annotations}
    results = []
    for webhook in configuration["webhooks"]:
        (condition,) = webhook["matchConditions"]
        value = CEL.compile(condition["expression"]).eval(data={"object": {"metadata": metadata}}).value()
        assert isinstance(value, bool), value
        results.append(value)
    assert results == [asks, namespace_pod]


def test_the_webhook_service_reaches_the_operator_webhook_port_and_only_ready_replicas() -> None:
    objects = render(ON)
    service = find(objects, "Service", "modelgate-webhook")
    deployment = find(objects, "Deployment", "modelgate-operator")
    assert service["spec"]["selector"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    assert service["spec"]["ports"] == [{"name": "webhook", "port": 443, "targetPort": "webhook", "protocol": "TCP"}]
    operator = _operator(objects)
    assert {"name": "webhook", "containerPort": 9443, "protocol": "TCP"} in operator["ports"]
    assert operator["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": "webhook", "scheme": "HTTPS"}
    env = {e["name"]: e.get("value") for e in operator["env"]}
    assert env["MODELGATE_OPERATOR_WEBHOOK_CONFIGURATION"] == "modelgate-sidecar-injector"
    assert env["MODELGATE_OPERATOR_WEBHOOK_SERVICE"] == "modelgate-webhook"
    assert env["MODELGATE_OPERATOR_WEBHOOK_SECRET"] == "modelgate-webhook-tls"
    assert "MODELGATE_OPERATOR_WEBHOOK_CERT_DIR" not in env
    assert env["MODELGATE_OPERATOR_SIDECAR_SHARING_NAMESPACES"] == NAMESPACE
    assert env["MODELGATE_OPERATOR_SIDECAR_CLUSTERROLE"] == "modelgate-sidecar"
    mounts = {m["name"]: m["mountPath"] for m in operator["volumeMounts"]}
    assert Path(env["MODELGATE_OPERATOR_SIDECAR_TEMPLATE"]).parent == Path(mounts["sidecar-template"])


def test_the_sidecar_template_is_what_the_operator_reads() -> None:
    objects = render(ON)
    data = json.loads(find(objects, "ConfigMap", "modelgate-sidecar-template")["data"]["sidecar.json"])
    template = SidecarTemplate.from_data(data)
    gateway = find(objects, "Deployment", "modelgate-gateway")["spec"]["template"]["spec"]["containers"][0]
    assert template.image == gateway["image"]
    assert (template.port, template.admin_port, template.api_keys_secret) == (4100, 14090, "modelgate-sidecar-api-keys")
    assert (template.configmap, template.secret, template.gateway) == (
        "modelgate-sidecar-config",
        "modelgate-sidecar-upstream-keys",
        "modelgate",
    )
    security = template.security_context
    assert security["runAsNonRoot"] and security["readOnlyRootFilesystem"]
    assert security["allowPrivilegeEscalation"] is False and security["capabilities"] == {"drop": ["ALL"]}
    assert template.resources["limits"]["memory"] and template.resources["requests"]["cpu"]
    annotations = find(objects, "Deployment", "modelgate-operator")["spec"]["template"]["metadata"]["annotations"]
    assert "checksum/sidecar-template" in annotations


def test_a_separate_sidecar_image_can_be_set() -> None:
    objects = render(
        sets=("sidecar.enabled=true", "sidecar.image.repository=registry.example/mg-sidecar", "sidecar.image.tag=1.2.3")
    )
    data = json.loads(find(objects, "ConfigMap", "modelgate-sidecar-template")["data"]["sidecar.json"])
    assert data["image"] == "registry.example/mg-sidecar:1.2.3"


def test_rbac_of_the_sidecars_and_of_the_operator_cluster_wide() -> None:
    objects = render(ON)
    assert _rules(find(objects, "ClusterRole", "modelgate-sidecar")) == sorted(
        [
            (("",), ("configmaps",), CONFIGMAPS, ("get", "list", "watch")),
            (("",), ("secrets",), SECRETS, ("get", "list", "watch")),
        ]
    )
    assert _rules(find(objects, "ClusterRole", "modelgate-operator-sidecar")) == sorted(
        [WEBHOOK_CONFIGURATION_RULE, *NAMESPACE_RULES]
    )
    assert _rules(find(objects, "Role", "modelgate-operator-webhook")) == [
        (("",), ("secrets",), ("modelgate-webhook-tls",), ("get", "patch"))
    ]
    for kind, name in (
        ("ClusterRoleBinding", "modelgate-operator-sidecar"),
        ("RoleBinding", "modelgate-operator-webhook"),
    ):
        binding = find(objects, kind, name)
        assert binding["roleRef"]["name"] == name
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "modelgate-operator", "namespace": NAMESPACE}]
    # No binding of the sidecar role in the chart: the operator binds it per namespace.
    assert not [
        b
        for b in kinds(objects, "RoleBinding") + kinds(objects, "ClusterRoleBinding")
        if b["roleRef"]["name"] == "modelgate-sidecar"
    ]


def test_rbac_and_selectors_with_watched_namespaces_and_cert_manager() -> None:
    objects = render(CERT_MANAGER)
    assert not [r for r in kinds(objects, "ClusterRole") if r["metadata"]["name"] == "modelgate-operator-sidecar"]
    assert not [r for r in kinds(objects, "Role") if r["metadata"]["name"] == "modelgate-operator-webhook"]
    roles = [r for r in kinds(objects, "Role") if r["metadata"]["name"] == "modelgate-operator-sidecar"]
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["team-a", "team-b"]
    for role in roles:
        assert _rules(role) == sorted(NAMESPACE_RULES)
    configuration = find(objects, "MutatingWebhookConfiguration", "modelgate-sidecar-injector")
    assert configuration["metadata"]["annotations"] == {"cert-manager.io/inject-ca-from": "modelgate/modelgate-webhook"}
    for webhook in configuration["webhooks"]:
        assert (webhook["failurePolicy"], webhook["timeoutSeconds"]) == ("Fail", 5)
        assert {"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["team-a", "team-b"]} in (
            webhook["namespaceSelector"]["matchExpressions"]
        )
    certificate = find(objects, "Certificate", "modelgate-webhook")
    assert certificate["spec"]["secretName"] == "modelgate-webhook-tls"
    assert certificate["spec"]["dnsNames"] == [
        "modelgate-webhook.modelgate.svc",
        "modelgate-webhook.modelgate.svc.cluster.local",
    ]
    assert certificate["spec"]["issuerRef"] == {"name": "modelgate-webhook", "kind": "Issuer"}
    env = {e["name"]: e.get("value") for e in _operator(objects)["env"]}
    assert env["MODELGATE_OPERATOR_WEBHOOK_CERT_DIR"] == "/etc/modelgate-operator/webhook-tls"
    podmonitor = kinds(
        render(CERT_MANAGER, sets=("sidecar.podMonitor.enabled=true", "sidecar.podMonitor.force=true")), "PodMonitor"
    )
    assert podmonitor[0]["spec"]["namespaceSelector"] == {"matchNames": ["team-a", "team-b"]}


def test_cert_manager_signs_the_serving_certificate_with_a_ca_that_outlives_it() -> None:
    """The injected caBundle (the serving certificate Secret's ca.crt) is the chart's own CA, which
    keeps its key when renewed: a renewed serving certificate is trusted by the bundle before and
    after the operator reloads the mounted files. (Signed by a self-signed issuer directly, the
    certificate was its own CA: each renewal changed the bundle, and until the kubelet and the
    operator caught up, pods that ask were created without the sidecar.)"""
    objects = render(CERT_MANAGER)
    issuers = {i["metadata"]["name"]: i["spec"] for i in kinds(objects, "Issuer")}
    assert issuers == {
        "modelgate-webhook-selfsigned": {"selfSigned": {}},
        "modelgate-webhook": {"ca": {"secretName": "modelgate-webhook-ca"}},
    }
    ca = find(objects, "Certificate", "modelgate-webhook-ca")["spec"]
    assert ca["isCA"] is True and ca["secretName"] == "modelgate-webhook-ca"
    assert ca["issuerRef"] == {"name": "modelgate-webhook-selfsigned", "kind": "Issuer"}
    assert ca["privateKey"]["rotationPolicy"] == "Never"
    serving = find(objects, "Certificate", "modelgate-webhook")["spec"]
    assert serving["issuerRef"] == {"name": "modelgate-webhook", "kind": "Issuer"} and "isCA" not in serving
    # With an issuer of the platform's, the chart creates none of its own.
    own = render(
        CERT_MANAGER,
        sets=(
            "sidecar.webhook.certManager.issuerRef.name=platform-ca",
            "sidecar.webhook.certManager.issuerRef.kind=ClusterIssuer",
        ),
    )
    assert not kinds(own, "Issuer") and [c["metadata"]["name"] for c in kinds(own, "Certificate")] == [
        "modelgate-webhook"
    ]
    assert kinds(own, "Certificate")[0]["spec"]["issuerRef"] == {"name": "platform-ca", "kind": "ClusterIssuer"}


def test_the_pod_monitor_selects_injected_pods_by_their_label_and_admin_port() -> None:
    (monitor,) = kinds(render(ON), "PodMonitor")
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert monitor["spec"]["selector"] == {"matchLabels": {"modelgate.dev/sidecar": "modelgate"}}
    assert monitor["spec"]["namespaceSelector"] == {"any": True}
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    assert (endpoint["port"], endpoint["path"]) == ("modelgate-admin", "/metrics")
    assert {r["targetLabel"] for r in endpoint["relabelings"]} == {"workload"}


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("sidecar.webhook.failurePolicy=Sometimes", "failurePolicy"),
        ("sidecar.webhook.timeoutSeconds=60", "timeoutSeconds"),
        ("sidecar.port=0", "port"),
        ("sidecar.adminPort=70000", "adminPort"),
        ("sidecar.logLevel=loud", "logLevel"),
        ("sidecar.enable=true", "enable"),
        ("sidecar.apiKeys.secretName=Not_A_Name", "secretName"),
        ("sidecar.sharingNamespaces={Platform}", "sharingNamespaces"),
    ],
)
def test_bad_sidecar_values_are_rejected_by_the_schema(setting: str, message: str) -> None:
    stderr = render_fails(sets=(setting,))
    assert "schema" in stderr.lower() and message in stderr, stderr


def test_every_dashboard_query_filters_by_namespace_and_workload() -> None:
    dashboard = json.loads((CHART / "dashboards" / "modelgate-overview.json").read_text())
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["namespace"]["allValue"] == variables["workload"]["allValue"] == ".*"
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            selectors = re.findall(r"modelgate_[a-z_]+(\{[^}]*\})?", target["expr"])
            assert selectors, target["expr"]
            for selector in selectors:
                assert 'namespace=~"$namespace"' in selector and 'workload=~"$workload"' in selector, target["expr"]


def test_sharing_namespaces_reach_the_operator() -> None:
    objects = render(sets=("sidecar.enabled=true", "sidecar.sharingNamespaces={platform,models}"))
    env = {e["name"]: e.get("value") for e in _operator(objects)["env"]}
    assert env["MODELGATE_OPERATOR_SIDECAR_SHARING_NAMESPACES"] == "platform,models"
