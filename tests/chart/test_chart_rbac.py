"""RBAC rules, asserted exactly: the gateway reads only its own ConfigMap and Secret; the operator
gets what the architecture lists and nothing more."""

from typing import Any

from chart_helm import CI_VALUES, NAMESPACE, find, kinds, render


def _rules(
    role: dict[str, Any],
) -> list[tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...], tuple[str, ...]]]:
    return sorted(
        (
            tuple(r["apiGroups"]),
            tuple(r["resources"]),
            tuple(r.get("resourceNames", ())),
            tuple(sorted(r["verbs"])),
        )
        for r in role["rules"]
    )


def test_gateway_role_grants_only_its_configmap_and_secret() -> None:
    role = find(render(), "Role", "modelgate-gateway")
    assert _rules(role) == sorted(
        [
            (("",), ("configmaps",), ("modelgate-gateway-config",), ("get", "list", "watch")),
            (("",), ("secrets",), ("modelgate-gateway-upstream-keys",), ("get", "list", "watch")),
        ]
    )


def test_gateway_has_no_cluster_wide_permissions() -> None:
    for values in CI_VALUES:
        objects = render((values,))
        for binding in kinds(objects, "ClusterRoleBinding") + kinds(objects, "RoleBinding"):
            for subject in binding["subjects"]:
                assert subject["name"] != "modelgate-gateway" or binding["kind"] == "RoleBinding"
        gateway_bindings = [
            b
            for b in kinds(objects, "RoleBinding")
            if any(s["name"] == "modelgate-gateway" for s in b["subjects"])
        ]
        assert [b["roleRef"]["name"] for b in gateway_bindings] == ["modelgate-gateway"]


def test_operator_cluster_role_is_exact() -> None:
    role = find(render(), "ClusterRole", "modelgate-operator")
    assert _rules(role) == sorted(
        [
            (("modelgate.dev",), ("modelroutes",), (), ("get", "list", "patch", "watch")),
            (("modelgate.dev",), ("modelroutes/status",), (), ("get", "patch", "update")),
            (("",), ("secrets",), (), ("get", "list", "watch")),
            (("",), ("events",), (), ("create", "patch")),
            (("events.k8s.io",), ("events",), (), ("create", "patch")),
            (("",), ("namespaces",), (), ("list", "watch")),
            (("apiextensions.k8s.io",), ("customresourcedefinitions",), (), ("list", "watch")),
            (("kopf.dev",), ("clusterkopfpeerings",), (), ("get", "list", "patch", "watch")),
        ]
    )


def test_operator_role_in_release_namespace_is_exact() -> None:
    role = find(render(), "Role", "modelgate-operator")
    assert role["metadata"]["namespace"] == NAMESPACE
    assert _rules(role) == sorted(
        [
            (("",), ("configmaps",), (), ("create", "get", "list", "watch")),
            (("",), ("configmaps",), ("modelgate-gateway-config",), ("patch",)),
            (("",), ("secrets",), (), ("create",)),
            (("",), ("secrets",), ("modelgate-gateway-upstream-keys",), ("get", "patch")),
            (("",), ("pods",), (), ("get", "list", "watch")),
            (("apps",), ("deployments",), (), ("get",)),
            (("kopf.dev",), ("kopfpeerings",), (), ("get", "list", "patch", "watch")),
        ]
    )


def test_no_role_uses_wildcards_or_escalation_verbs() -> None:
    for values in CI_VALUES:
        for obj in render((values,)):
            if obj["kind"] not in {"Role", "ClusterRole"}:
                continue
            for rule in obj["rules"]:
                assert "*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"]
                assert not {"escalate", "bind", "impersonate", "delete", "deletecollection"} & set(
                    rule["verbs"]
                )


def test_bindings_point_at_the_component_service_accounts() -> None:
    objects = render()
    for name in ("modelgate-gateway", "modelgate-operator"):
        binding = find(objects, "RoleBinding", name)
        assert binding["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": name,
        }
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": name, "namespace": NAMESPACE}
        ]
    cluster_binding = find(objects, "ClusterRoleBinding", "modelgate-operator")
    assert cluster_binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "modelgate-operator", "namespace": NAMESPACE}
    ]
    for deployment in ("modelgate-gateway", "modelgate-operator"):
        spec = find(objects, "Deployment", deployment)["spec"]["template"]["spec"]
        assert spec["serviceAccountName"] == deployment


def test_restricted_namespaces_get_namespaced_peering_and_its_rbac() -> None:
    values = next(p for p in CI_VALUES if "restricted-namespaces" in p.name)
    objects = render((values,))
    assert kinds(objects, "ClusterKopfPeering") == []
    peerings = {
        (p["metadata"]["namespace"], p["metadata"]["name"]) for p in kinds(objects, "KopfPeering")
    }
    assert peerings == {("team-a", "modelgate"), ("team-b", "modelgate"), (NAMESPACE, "modelgate")}
    for namespace in ("team-a", "team-b"):
        role = next(r for r in kinds(objects, "Role") if r["metadata"]["namespace"] == namespace)
        assert _rules(role) == [
            (("kopf.dev",), ("kopfpeerings",), (), ("get", "list", "patch", "watch"))
        ]
        binding = next(
            b for b in kinds(objects, "RoleBinding") if b["metadata"]["namespace"] == namespace
        )
        assert binding["roleRef"]["name"] == role["metadata"]["name"]
        assert binding["subjects"][0]["name"] == "modelgate-operator"
    env = {
        e["name"]: e.get("value")
        for e in find(objects, "Deployment", "modelgate-operator")["spec"]["template"]["spec"][
            "containers"
        ][0]["env"]
    }
    assert env["MODELGATE_OPERATOR_NAMESPACES"] == "team-a,team-b"


def test_rbac_can_be_left_to_the_cluster_admin() -> None:
    objects = render(sets=("gateway.rbac.create=false", "operator.rbac.create=false"))
    assert not [
        o
        for o in objects
        if o["kind"] in {"Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"}
    ]
