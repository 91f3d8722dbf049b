"""RBAC rules, asserted exactly: the gateway reads only its own ConfigMaps and Secrets (the config,
its shards, the upstream keys); the operator gets what its code and kopf call (docs/install.md §7)
and nothing more, cluster-wide only when it watches every namespace, deleting only its shards."""

from typing import Any

import pytest

from chart_helm import CI_VALUES, NAMESPACE, find, kinds, render
from modelgate_operator.rendering.layout import allowed_objects
from modelgate_operator.settings import OperatorSettings


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


CM, KEYS = "modelgate-gateway-config", "modelgate-gateway-upstream-keys"
SHARDS = tuple(f"{CM}-{i}" for i in range(32))
KEY_SHARDS = tuple(f"{KEYS}-{i}" for i in range(1, 32))


def test_gateway_role_grants_only_its_configmaps_and_secrets() -> None:
    role = find(render(), "Role", "modelgate-gateway")
    assert _rules(role) == sorted(
        [
            (("",), ("configmaps",), (CM, *SHARDS), ("get", "list", "watch")),
            (("",), ("secrets",), (KEYS, *KEY_SHARDS), ("get", "list", "watch")),
        ]
    )


@pytest.mark.parametrize("shards", [1, 4, 32])
def test_roles_name_exactly_the_objects_the_operator_may_write(shards: int) -> None:
    """The chart and the operator agree: every object of every layout is readable by the gateway
    and writable by the operator, and nothing else is."""
    objects = render(sets=(f"operator.maxConfigShards={shards}",))
    allowed = allowed_objects(OperatorSettings(configmap=CM, secret=KEYS, max_shards=shards))
    names = {kind: {n for k, n in allowed if k == kind} for kind in ("ConfigMap", "Secret")}
    env = {
        e["name"]: e.get("value")
        for e in find(objects, "Deployment", "modelgate-operator")["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["MODELGATE_OPERATOR_MAX_SHARDS"] == str(shards)
    for role_name, verbs in (("modelgate-gateway", ("get", "list", "watch")), ("modelgate-operator", ("get", "patch"))):
        rules = [r for r in _rules(find(objects, "Role", role_name)) if r[3] == verbs]
        granted = {resource: set(names_) for _, (resource,), names_, _ in rules}
        assert granted == {"configmaps": names["ConfigMap"], "secrets": names["Secret"]}, role_name
    deletable = {r[1][0]: set(r[2]) for r in _rules(find(objects, "Role", "modelgate-operator")) if r[3] == ("delete",)}
    assert deletable.get("configmaps") == names["ConfigMap"] - {CM}
    assert deletable.get("secrets", set()) == names["Secret"] - {KEYS}


def test_gateway_has_no_cluster_wide_permissions() -> None:
    for values in CI_VALUES:
        objects = render((values,))
        for binding in kinds(objects, "ClusterRoleBinding") + kinds(objects, "RoleBinding"):
            for subject in binding["subjects"]:
                assert subject["name"] != "modelgate-gateway" or binding["kind"] == "RoleBinding"
        gateway_bindings = [
            b for b in kinds(objects, "RoleBinding") if any(s["name"] == "modelgate-gateway" for s in b["subjects"])
        ]
        assert [b["roleRef"]["name"] for b in gateway_bindings] == ["modelgate-gateway"]


# Rules a route namespace needs, cluster-wide by default or per watched namespace: kopf lists and
# watches routes and Secrets (on.event handlers only: no get, no patch of the route itself); the
# operator patches route status, reads referenced Secrets and posts core/v1 Events.
ROUTE_RULES = [
    (("modelgate.dev",), ("modelroutes",), (), ("list", "watch")),
    (("modelgate.dev",), ("modelroutes/status",), (), ("patch",)),
    (("",), ("secrets",), (), ("get", "list", "watch")),
    (("",), ("events",), (), ("create",)),
    # ModelGateKeys like routes, and the Secret of a key with generateSecret.
    (("modelgate.dev",), ("modelgatekeys",), (), ("list", "watch")),
    (("modelgate.dev",), ("modelgatekeys/status",), (), ("patch",)),
    (("",), ("secrets",), (), ("create",)),
]
USER_ROLES = {"modelgate-modelgatekeys-edit", "modelgate-modelgatekeys-view"}
CRDS_RULE = (("apiextensions.k8s.io",), ("customresourcedefinitions",), (), ("list", "watch"))


def _restricted() -> tuple[dict[str, Any], ...]:
    return render((next(p for p in CI_VALUES if "restricted-namespaces" in p.name),))


def test_operator_cluster_role_is_exact() -> None:
    role = find(render(), "ClusterRole", "modelgate-operator")
    assert _rules(role) == sorted(
        [
            *ROUTE_RULES,
            CRDS_RULE,
            (("kopf.dev",), ("clusterkopfpeerings",), (), ("get", "list", "patch", "watch")),
        ]
    )


def test_restricted_operator_cluster_role_keeps_only_kopf_discovery() -> None:
    role = find(_restricted(), "ClusterRole", "modelgate-operator")
    assert _rules(role) == sorted([CRDS_RULE, (("",), ("namespaces",), (), ("list", "watch"))])


def test_operator_role_in_release_namespace_is_exact() -> None:
    for objects in (render(), _restricted()):
        role = find(objects, "Role", "modelgate-operator")
        assert role["metadata"]["namespace"] == NAMESPACE
        assert _rules(role) == sorted(
            [
                (("",), ("configmaps",), (), ("create",)),
                (("",), ("configmaps",), (CM, *SHARDS), ("get", "patch")),
                (("",), ("configmaps",), SHARDS, ("delete",)),
                (("",), ("secrets",), (), ("create",)),
                (("",), ("secrets",), (KEYS, *KEY_SHARDS), ("get", "patch")),
                (("",), ("secrets",), KEY_SHARDS, ("delete",)),
                (("",), ("pods",), (), ("list",)),
                (("apps",), ("deployments",), ("modelgate-gateway",), ("get",)),
                # A refused base config: a Warning Event on its ConfigMap, in both modes.
                (("",), ("configmaps",), ("modelgate-operator-base-config",), ("get",)),
                (("",), ("events",), (), ("create",)),
            ]
        )


def test_no_role_uses_wildcards_or_escalation_verbs() -> None:
    for values in CI_VALUES:
        for obj in render((values,)):
            if obj["kind"] not in {"Role", "ClusterRole"}:
                continue
            for rule in obj["rules"]:
                assert "*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"]
                assert not {"escalate", "impersonate", "deletecollection"} & set(rule["verbs"])
                name = obj["metadata"]["name"]
                if "delete" in rule["verbs"] and name == "modelgate-operator":
                    # of the components, the operator deletes only its shards
                    assert rule["verbs"] == ["delete"]
                    assert set(rule["resourceNames"]) <= set(SHARDS + KEY_SHARDS)
                elif {"delete", "bind"} & set(rule["verbs"]) and name not in USER_ROLES:
                    # sidecar mode: the operator deletes only its own per-namespace objects, by name, and
                    # binds only the sidecars' ClusterRole (to their ServiceAccounts, docs/sidecar.md)
                    assert name == "modelgate-operator-sidecar", obj["metadata"]
                    assert rule.get("resourceNames"), rule
                if "bind" in rule["verbs"]:
                    assert (rule["resources"], rule["resourceNames"]) == (["clusterroles"], ["modelgate-sidecar"])


def test_namespace_users_manage_their_keys_through_the_built_in_roles() -> None:
    """Aggregated into admin/edit (manage) and view (read): a RoleBinding of `edit` in a namespace
    grants that namespace's ModelGateKeys and nothing else of ModelGate."""
    objects = render()
    edit = find(objects, "ClusterRole", "modelgate-modelgatekeys-edit")
    view = find(objects, "ClusterRole", "modelgate-modelgatekeys-view")
    labels = edit["metadata"]["labels"]
    assert labels["rbac.authorization.k8s.io/aggregate-to-edit"] == "true"
    assert labels["rbac.authorization.k8s.io/aggregate-to-admin"] == "true"
    assert view["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-view"] == "true"
    assert _rules(edit) == [
        (("modelgate.dev",), ("modelgatekeys",), (), ("create", "delete", "get", "list", "patch", "update", "watch"))
    ]
    assert _rules(view) == [(("modelgate.dev",), ("modelgatekeys",), (), ("get", "list", "watch"))]
    off = render(sets=("keys.aggregateToNamespaceRoles=false",))
    assert not {o["metadata"]["name"] for o in kinds(off, "ClusterRole")} & USER_ROLES


def test_bindings_point_at_the_component_service_accounts() -> None:
    objects = render()
    for name in ("modelgate-gateway", "modelgate-operator"):
        binding = find(objects, "RoleBinding", name)
        assert binding["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": name,
        }
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": name, "namespace": NAMESPACE}]
    cluster_binding = find(objects, "ClusterRoleBinding", "modelgate-operator")
    assert cluster_binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "modelgate-operator", "namespace": NAMESPACE}
    ]
    for deployment in ("modelgate-gateway", "modelgate-operator"):
        spec = find(objects, "Deployment", deployment)["spec"]["template"]["spec"]
        assert spec["serviceAccountName"] == deployment


def test_restricted_namespaces_get_namespaced_peering_and_its_rbac() -> None:
    objects = _restricted()
    assert kinds(objects, "ClusterKopfPeering") == []
    peerings = {(p["metadata"]["namespace"], p["metadata"]["name"]) for p in kinds(objects, "KopfPeering")}
    assert peerings == {("team-a", "modelgate"), ("team-b", "modelgate")}
    watch_roles = [r for r in kinds(objects, "Role") if r["metadata"]["name"].endswith("-watch")]
    assert sorted(r["metadata"]["namespace"] for r in watch_roles) == ["team-a", "team-b"]
    for role in watch_roles:
        assert role["metadata"]["name"] == "modelgate-operator-watch"
        assert _rules(role) == sorted(
            [*ROUTE_RULES, (("kopf.dev",), ("kopfpeerings",), (), ("get", "list", "patch", "watch"))]
        )
        binding = find(
            tuple(
                b for b in kinds(objects, "RoleBinding") if b["metadata"]["namespace"] == role["metadata"]["namespace"]
            ),
            "RoleBinding",
            "modelgate-operator-watch",
        )
        assert binding["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": "modelgate-operator-watch",
        }
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "modelgate-operator", "namespace": NAMESPACE}]
    env = {
        e["name"]: e.get("value")
        for e in find(objects, "Deployment", "modelgate-operator")["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert env["MODELGATE_OPERATOR_NAMESPACES"] == "team-a,team-b"


def test_secrets_are_readable_cluster_wide_only_without_watch_namespaces() -> None:
    for objects, cluster_wide in ((render(), True), (_restricted(), False)):
        cluster_resources = {
            res for role in kinds(objects, "ClusterRole") for rule in role["rules"] for res in rule["resources"]
        }
        assert ("secrets" in cluster_resources) == cluster_wide
        assert ("modelroutes" in cluster_resources) == cluster_wide


def test_release_namespace_listed_in_watch_namespaces_gets_its_own_watch_role() -> None:
    objects = render(sets=("operator.watchNamespaces={team-a,modelgate}",))
    watch_roles = {
        r["metadata"]["namespace"]
        for r in kinds(objects, "Role")
        if r["metadata"]["name"] == "modelgate-operator-watch"
    }
    assert watch_roles == {"team-a", NAMESPACE}
    assert {p["metadata"]["namespace"] for p in kinds(objects, "KopfPeering")} == {
        "team-a",
        NAMESPACE,
    }


def test_rbac_can_be_left_to_the_cluster_admin() -> None:
    objects = render(
        sets=("gateway.rbac.create=false", "operator.rbac.create=false", "keys.aggregateToNamespaceRoles=false")
    )
    assert not [o for o in objects if o["kind"] in {"Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"}]


def test_no_endpointslice_access_unless_namespaces_are_named() -> None:
    objects = render()
    assert not [o for o in objects if o["metadata"]["name"].endswith("-endpointslices")]


def test_endpointslice_access_only_in_the_named_namespaces_and_nothing_more() -> None:
    objects = render(sets=("gateway.rbac.endpointSliceNamespaces={models,team-a}",))
    roles = [o for o in objects if o["kind"] == "Role" and o["metadata"]["name"] == "modelgate-gateway-endpointslices"]
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["models", "team-a"]
    for role in roles:
        assert _rules(role) == [(("discovery.k8s.io",), ("endpointslices",), (), ("get", "list", "watch"))]
    bindings = [
        o for o in objects if o["kind"] == "RoleBinding" and o["metadata"]["name"] == "modelgate-gateway-endpointslices"
    ]
    assert sorted(b["metadata"]["namespace"] for b in bindings) == ["models", "team-a"]
    for binding in bindings:
        assert binding["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": "modelgate-gateway-endpointslices",
        }
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "modelgate-gateway", "namespace": NAMESPACE}]
    assert "ClusterRole" not in {o["kind"] for o in objects if "endpointslices" in o["metadata"]["name"]}


def test_endpointslice_access_everywhere_is_a_cluster_role_of_that_one_resource() -> None:
    objects = render(sets=("gateway.rbac.endpointSliceNamespaces={*}",))
    role = find(objects, "ClusterRole", "modelgate-gateway-endpointslices")
    assert _rules(role) == [(("discovery.k8s.io",), ("endpointslices",), (), ("get", "list", "watch"))]
    binding = find(objects, "ClusterRoleBinding", "modelgate-gateway-endpointslices")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "modelgate-gateway", "namespace": NAMESPACE}]


@pytest.mark.parametrize(
    ("sets", "value"),
    [
        ((), ""),
        (("gateway.rbac.endpointSliceNamespaces={models,team-a}",), "models,team-a"),
        (("gateway.rbac.endpointSliceNamespaces={*}",), "*"),
    ],
)
def test_the_operator_knows_where_the_gateway_may_read_endpointslices(sets: tuple[str, ...], value: str) -> None:
    container = find(render(sets=sets), "Deployment", "modelgate-operator")["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["MODELGATE_OPERATOR_ENDPOINTSLICE_NAMESPACES"] == value
    unmanaged = find(render(sets=(*sets, "gateway.rbac.create=false")), "Deployment", "modelgate-operator")
    names = {e["name"] for e in unmanaged["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert "MODELGATE_OPERATOR_ENDPOINTSLICE_NAMESPACES" not in names  # RBAC not the chart's: not known
