"""The live operator keeps each namespace's sidecar objects in step with what needs them, with the
chart's timings (0.5 s debounce, 30 s resync): a namespace whose only reason for a sidecar
document is an injected pod gets its ConfigMap, Secret and RoleBinding within 2 s of the pod
appearing and loses all three within 2 s of it going away (kopf's pod watch); a pod that starts
running is counted in the routes' statuses within 2 s; a route attached to a namespace's sidecars,
or shared into it by the platform, reaches its document within 2 s of `kubectl apply`, and the
namespace's objects go within 2 s of the last such route going away.

The pods here were injected "by another replica": created already carrying the sidecar and its
label, without the annotation, so the webhook of this operator never sees them and only the watch
can tell the reconciler about them (the replica serving a webhook call is not necessarily the one
reconciling)."""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cluster_operator import mock_deployment, route, route_status
from kube_cluster import Cluster
from sidecar_cluster import SidecarOperator, read_or_none, sidecar_operator, wait_until

RBAC_API = "rbac.authorization.k8s.io/v1"


@pytest.fixture()
def namespaces(platform_and_teams: tuple[str, ...]) -> tuple[str, ...]:
    return platform_and_teams


@pytest.fixture()
def injector(cluster: Cluster, namespaces: tuple[str, ...], tmp_path: Path) -> Iterator[SidecarOperator]:
    platform, team_a, _ = namespaces
    mock = {"name": "mock", "provider": "mock", "upstreamModel": "canned", "mock": {"text": "shared"}}
    # Shared into team-a only: team-b needs a document only while an injected pod runs there.
    cluster.apply(route("shared", "shared-model", mock, sidecars={"shareWith": [team_a]}), platform)
    with sidecar_operator(cluster, platform, namespaces, tmp_path) as running:
        yield running


def _injected_elsewhere(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    """A pod as the webhook injects it (asked for with a dry run), minus the annotation."""
    asking = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "annotations": {"modelgate.dev/inject": "true"}},
        "spec": {"containers": [{"name": "app", "image": "example.com/app:1"}]},
    }
    injected = cluster.request("POST", f"/api/v1/namespaces/{namespace}/pods?dryRun=All", asking)
    pod = copy.deepcopy({"apiVersion": "v1", "kind": "Pod", "spec": injected["spec"]})
    meta = injected["metadata"]
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items() if k != "modelgate.dev/inject"}
    pod["metadata"] = {"name": name, "labels": meta["labels"], "annotations": annotations}
    assert any(c["name"] == "modelgate" for c in pod["spec"]["initContainers"])
    return pod


def _models(cluster: Cluster, namespace: str, injector: SidecarOperator) -> dict[str, str] | None:
    """Public model -> the mock's answer, in the namespace's sidecar document (None: no document)."""
    found = read_or_none(cluster, "v1", "ConfigMap", injector.template["configMap"], namespace)
    if found is None:
        return None
    spec = json.loads(found["data"]["config.json"])["spec"]
    deployments = {d["name"]: d for d in spec["deployments"]}
    return {m["name"]: deployments[m["targets"][0]["deployment"]]["mock"]["text"] for m in spec["models"]}


def _applied(cluster: Cluster, change: Any, probe: Any, what: str) -> float:
    """Make the change; seconds until ``probe`` holds."""
    started = time.monotonic()
    change()
    wait_until(probe, 10, what)
    return time.monotonic() - started


def _objects(cluster: Cluster, namespace: str, injector: SidecarOperator) -> list[dict[str, Any] | None]:
    return [
        read_or_none(cluster, "v1", "ConfigMap", injector.template["configMap"], namespace),
        read_or_none(cluster, "v1", "Secret", injector.template["secret"], namespace),
        read_or_none(cluster, RBAC_API, "RoleBinding", injector.gateway + "-sidecar", namespace),
    ]


def _appears(cluster: Cluster, namespace: str, injector: SidecarOperator, pod: dict[str, Any]) -> float:
    """Create the pod; seconds until its namespace holds the ConfigMap, Secret and RoleBinding."""
    created = time.monotonic()
    cluster.request("POST", f"/api/v1/namespaces/{namespace}/pods", pod)
    _, _, binding = wait_until(
        lambda: found if all(found := _objects(cluster, namespace, injector)) else None,
        10,
        f"{namespace}'s ConfigMap, Secret and RoleBinding",
    )
    assert binding is not None
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "default", "namespace": namespace}]
    return time.monotonic() - created


def _goes_away(cluster: Cluster, namespace: str, injector: SidecarOperator, name: str) -> float:
    """Delete the pod; seconds until its namespace's sidecar objects are deleted."""
    deleted = time.monotonic()
    cluster.request("DELETE", f"/api/v1/namespaces/{namespace}/pods/{name}?gracePeriodSeconds=0")
    wait_until(lambda: _objects(cluster, namespace, injector) == [None, None, None], 10, f"{namespace}'s objects gone")
    return time.monotonic() - deleted


def test_a_namespace_follows_its_injected_pod_appearing_and_going_away_within_two_seconds(
    cluster: Cluster, namespaces: tuple[str, ...], injector: SidecarOperator
) -> None:
    team_b = namespaces[2]
    pod = _injected_elsewhere(cluster, team_b, "chat")
    assert _objects(cluster, team_b, injector) == [None, None, None]
    # Each step waits for the pass the previous one caused, so the next pass has only the pod
    # watch to wake it (no start-up pass, no webhook call, the resync 30 s away).
    timings = [
        _appears(cluster, team_b, injector, pod),
        _goes_away(cluster, team_b, injector, "chat"),
        _appears(cluster, team_b, injector, pod),
        _goes_away(cluster, team_b, injector, "chat"),
    ]
    assert max(timings) < 2.0, f"seconds from pod created/deleted to objects created/deleted: {timings}"
    # The chart's RBAC lets the operator watch the injected pods (kopf would log a 403 otherwise).
    log = injector.process.log()
    assert "Traceback" not in log and " 403" not in log and "Forbidden" not in log, log


def test_a_pod_that_starts_running_is_counted_within_two_seconds(
    cluster: Cluster, namespaces: tuple[str, ...], injector: SidecarOperator
) -> None:
    platform, team_a, _ = namespaces
    cluster.request("POST", f"/api/v1/namespaces/{team_a}/pods", _injected_elsewhere(cluster, team_a, "chat"))
    wait_until(lambda: route_status(cluster, platform, "shared").get("sidecars") == "0/0", 10, "no sidecar runs")
    started = time.monotonic()
    # No kubelet here: the test reports the pod running (at an address nothing listens on, so
    # the sidecar is counted but not serving).
    cluster.request(
        "PATCH",
        f"/api/v1/namespaces/{team_a}/pods/chat/status",
        {"status": {"phase": "Running", "podIP": "127.0.0.1", "podIPs": [{"ip": "127.0.0.1"}]}},
        content_type="application/merge-patch+json",
    )
    wait_until(lambda: route_status(cluster, platform, "shared").get("sidecars") == "0/1", 10, "the sidecar counted")
    elapsed = time.monotonic() - started
    assert elapsed < 2.0, f"{elapsed:.2f} s from the pod running to the route's status counting it"
    ready = next(c for c in route_status(cluster, platform, "shared")["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "False", ready  # a sidecar that does not serve the route holds Ready back


def test_a_namespace_follows_its_attached_and_shared_routes_within_two_seconds(
    cluster: Cluster, namespaces: tuple[str, ...], injector: SidecarOperator
) -> None:
    platform, _, team_b = namespaces
    own = route("b-chat", "b-model", mock_deployment("mock", "v1"), sidecars={"attach": True, "sharedGateway": False})
    shared = route("to-b", "to-b-model", mock_deployment("mock", "platform"), sidecars={"shareWith": [team_b]})
    routes = f"/apis/modelgate.dev/v1alpha1/namespaces/{team_b}/modelroutes"
    timings = [
        _applied(
            cluster,
            lambda: cluster.apply(own, team_b),
            lambda: _models(cluster, team_b, injector) == {"b-model": "v1"},
            "the attached route in team-b's document",
        ),
        _applied(
            cluster,
            lambda: cluster.apply(
                route("b-chat", "b-model", mock_deployment("mock", "v2"), sidecars=own["spec"]["sidecars"]), team_b
            ),
            lambda: _models(cluster, team_b, injector) == {"b-model": "v2"},
            "the changed route in team-b's document",
        ),
        _applied(
            cluster,
            lambda: cluster.apply(shared, platform),
            lambda: _models(cluster, team_b, injector) == {"b-model": "v2", "to-b-model": "platform"},
            "the platform's route shared into team-b",
        ),
        _applied(
            cluster,
            lambda: cluster.request("DELETE", f"{routes}/b-chat"),
            lambda: _models(cluster, team_b, injector) == {"to-b-model": "platform"},
            "the deleted route gone from team-b's document",
        ),
        _applied(
            cluster,
            lambda: cluster.apply(
                route("to-b", "to-b-model", mock_deployment("mock", "platform"), sidecars={"shareWith": []}), platform
            ),
            lambda: _objects(cluster, team_b, injector) == [None, None, None],
            "team-b's objects deleted once nothing there needs them",
        ),
    ]
    assert max(timings) < 2.0, f"seconds from kubectl apply/delete to team-b's objects following: {timings}"
