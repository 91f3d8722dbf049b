"""Injected pods read from the API: namespace, ServiceAccount, and where their sidecar answers."""

from __future__ import annotations

from typing import Any

import jsonpatch

from modelgate_operator.injection.mutation import decide
from modelgate_operator.injection.pods import SidecarPod, pod_fingerprint, service_accounts, sidecar_pod
from modelgate_operator.injection.template import SidecarTemplate

TEMPLATE = SidecarTemplate(image="ghcr.io/modelgate/gateway:0.1.0")


def _injected(name: str, namespace: str = "team-a", sa: str | None = None, **status: Any) -> dict[str, Any]:
    pod: dict[str, Any] = {
        "metadata": {
            "name": name,
            "namespace": namespace,
            "annotations": {"modelgate.dev/inject": "true", "modelgate.dev/admin-port": "15000"},
        },
        "spec": {"containers": [{"name": "app", "image": "x"}]},
    }
    if sa:
        pod["spec"]["serviceAccountName"] = sa
    after: dict[str, Any] = jsonpatch.apply_patch(
        pod, [dict(op) for op in decide(pod, namespace, False, TEMPLATE).patch]
    )
    after["status"] = status
    return after


def test_a_running_injected_pod_is_probed_on_its_admin_port() -> None:
    pod = sidecar_pod(_injected("a", sa="chat", phase="Running", podIP="10.0.0.7"))
    assert pod == SidecarPod("team-a", "a", "chat", "10.0.0.7", 15000)
    assert pod.probeable


def test_a_pending_pod_counts_for_its_namespace_but_is_not_probed() -> None:
    pod = sidecar_pod(_injected("b", phase="Pending"))
    assert pod is not None and pod.service_account == "default" and not pod.probeable


def test_pods_without_the_sidecar_or_being_deleted_are_ignored() -> None:
    plain = {"metadata": {"name": "c", "namespace": "team-a"}, "spec": {"containers": []}}
    leaving = _injected("d", phase="Running", podIP="10.0.0.8")
    leaving["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    assert sidecar_pod(plain) is None and sidecar_pod(leaving) is None


def test_service_accounts_per_namespace() -> None:
    pods = [
        sidecar_pod(_injected(n, ns, sa))
        for n, ns, sa in (
            ("a", "team-a", "chat"),
            ("b", "team-a", None),
            ("c", "team-a", "chat"),
            ("d", "team-b", "job"),
        )
    ]
    assert service_accounts([p for p in pods if p is not None]) == {"team-a": ["chat", "default"], "team-b": ["job"]}


def test_the_pod_fingerprint_changes_with_what_a_pass_reads_and_only_that() -> None:
    """The pod watch wakes the reconcile loop when, and only when, the fingerprint changes."""
    pending = _injected("e", phase="Pending")
    running = _injected("e", phase="Running", podIP="10.0.0.9", conditions=[{"type": "Ready", "status": "False"}])
    ready = _injected("e", phase="Running", podIP="10.0.0.9", conditions=[{"type": "Ready", "status": "True"}])
    leaving = _injected("e", phase="Running", podIP="10.0.0.9", conditions=[{"type": "Ready", "status": "True"}])
    leaving["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    prints = [pod_fingerprint(p) for p in (pending, running, ready, leaving, _injected("e", sa="job"))]
    assert all(a != b for i, a in enumerate(prints) for b in prints[i + 1 :])
    relabelled = _injected("e", phase="Pending")
    relabelled["metadata"]["labels"]["team"] = "a"
    relabelled["status"]["startTime"] = "2026-01-01T00:00:00Z"
    assert pod_fingerprint(relabelled) == pod_fingerprint(pending)
