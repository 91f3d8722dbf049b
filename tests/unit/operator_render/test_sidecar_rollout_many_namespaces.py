"""The sidecar rollout count and clean-up hold for any number of sidecar namespaces: each namespace
remembers the documents it published itself. (One history of the 64 latest documents for all namespaces
forgot, within a single pass, what the first namespaces published once there were more than 64:
their sidecars counted as not serving, and their routes stayed RollingOut for ever.)"""

from __future__ import annotations

import pytest

from kube_routes import mock_deployment, route
from modelgate_operator.reconciling import sidecars as sidecar_pass
from modelgate_operator.reconciling.sidecars import Inputs
from modelgate_operator.rendering.resources import parse_route
from sidecar_fakes import SidecarApi, running_pod, sidecar_reconciler

NAMESPACES = [f"team-{i:03d}" for i in range(80)]
ROUTES = [
    parse_route(
        route("chat", f"model-{ns}", namespace=ns, deployments=[mock_deployment()], sidecars={"attach": True}),
        "modelgate",
    )
    for ns in NAMESPACES
]


def test_every_namespace_counts_its_sidecars_serving_with_eighty_namespaces() -> None:
    pods = [running_pod(ns, f"app-{ns}", f"10.0.{i // 250}.{i % 250 + 1}") for i, ns in enumerate(NAMESPACES)]
    api = SidecarApi(pods=pods)
    reconciler = sidecar_reconciler(api, api.following_probe())
    first = reconciler.reconcile(Inputs(ROUTES, {}, None))  # publishes; the sidecars still serve nothing
    assert {str(r) for r in first.rollouts.values()} == {"0/1"}
    second = reconciler.reconcile(Inputs(ROUTES, {}, None))  # every sidecar now serves its document
    behind = sorted(namespace for (namespace, _), rollout in second.rollouts.items() if rollout.serving != 1)
    assert behind == [] and len(second.rollouts) == len(NAMESPACES)
    assert not second.rolling_out


def test_the_clean_up_deadline_passes_in_every_namespace_however_many(monkeypatch: pytest.MonkeyPatch) -> None:
    """A namespace whose sidecars never serve the new document (stuck pods) still gets its unused
    keys pruned once the rollout deadline passed. (The first-seen times were one dict of at most
    4096 documents, emptied whenever a pass went past that: with more sidecar namespaces, the
    deadline started over every pass and never passed.)"""
    clock = [0.0]
    monkeypatch.setattr(sidecar_pass.time, "monotonic", lambda: clock[0])
    reconciler = sidecar_reconciler(SidecarApi())
    many = [f"team-{i:04d}" for i in range(5000)]
    deadline = reconciler.settings.rollout_deadline_seconds
    assert not any(reconciler._served(ns, "sha256:new", [None]) for ns in many)  # published now, not served
    clock[0] = deadline + 1
    late = [ns for ns in many if not reconciler._served(ns, "sha256:new", [None])]
    assert late == []
