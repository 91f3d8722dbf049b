"""The sidecar part of a pass keeps one namespace's trouble in that namespace: a namespace whose
objects cannot be written, read, or fit is reported by its own routes (or leaves their statuses
alone) while every other namespace gets its document; failures to write are retried."""

from __future__ import annotations

from typing import Any

import pytest

from kube_fake import FakeKube
from kube_routes import mock_deployment, route
from modelgate_gateway.config.sharding import TooLarge
from modelgate_operator.errors import KubeApiError
from modelgate_operator.reconciling import sidecars as sidecar_pass
from modelgate_operator.reconciling.conditions import Rollout, build_status
from modelgate_operator.reconciling.sidecars import Inputs, SidecarPass, route_view
from modelgate_operator.rendering.resources import ModelRoute, parse_route
from modelgate_operator.settings import OperatorSettings
from sidecar_fakes import SidecarApi, sidecar_reconciler

ONLY_SIDECARS = {"attach": True, "sharedGateway": False}
ROUTES = [
    parse_route(body, "modelgate")
    for body in (
        route("a-chat", "a-model", namespace="team-a", deployments=[mock_deployment()], sidecars=ONLY_SIDECARS),
        route("b-chat", "b-model", namespace="team-b", deployments=[mock_deployment()], sidecars=ONLY_SIDECARS),
        route(
            "shared",
            "s-model",
            namespace="platform",
            deployments=[mock_deployment()],
            sidecars={"shareWith": ["team-a"]},
        ),
    )
]
A_CHAT, B_CHAT, SHARED = (r.key for r in ROUTES)


class Refusing(FakeKube):
    """A namespace's objects as the API server treats them when it refuses some calls."""

    def __init__(self, reads: bool = True, writes: bool = True) -> None:
        super().__init__()
        self.reads_ok, self.writes_ok = reads, writes

    def read_object(self, kind: str, name: str) -> Any:
        if not self.reads_ok:
            raise KubeApiError(f"get {kind} {name}: HTTP 503 Service Unavailable")
        return super().read_object(kind, name)

    def write_object(self, kind: str, name: str, data: Any, **kwargs: Any) -> None:
        if not self.writes_ok:
            raise KubeApiError(f"create {kind} {name}: HTTP 403 Forbidden")
        super().write_object(kind, name, data, **kwargs)


def _pass(stores: dict[str, FakeKube]) -> SidecarPass:
    return sidecar_reconciler(SidecarApi(stores)).reconcile(Inputs(ROUTES, {}, None))


def _ready(route_: ModelRoute, result: SidecarPass) -> dict[str, Any]:
    view = route_view(route_, {}, Rollout(0, 0), None, result)
    status, _ = build_status(
        route_,
        view.verdict,
        view.rollout,
        None,
        "2026-01-01T00:00:00Z",
        view.withheld,
        sidecars=view.sidecars,
        sidecar_mode=True,
    )
    return next(c for c in status["conditions"] if c["type"] == "Ready")


def _models(store: FakeKube) -> list[str]:
    config = store.config()
    return sorted(m["name"] for m in config["spec"]["models"]) if config else []


def test_a_namespace_refusing_writes_is_reported_by_its_routes_and_retried_and_the_others_are_served() -> None:
    stores: dict[str, FakeKube] = {"team-a": Refusing(writes=False)}
    result = _pass(stores)
    assert _models(stores["team-b"]) == ["b-model"] and _models(stores["team-a"]) == []
    assert len(result.failed) == 1 and "team-a" in result.failed[0] and "403" in result.failed[0]
    refused = _ready(ROUTES[0], result)
    assert (refused["status"], refused["reason"]) == ("False", sidecar_pass.NOT_PUBLISHED)
    assert "team-a" in refused["message"] and "403 Forbidden" in refused["message"]
    assert _ready(ROUTES[1], result)["status"] == "True"
    # The platform's route is shared into team-a: not Ready until team-a's sidecars can have it.
    assert _ready(ROUTES[2], result)["reason"] == sidecar_pass.NOT_PUBLISHED
    assert not result.unchanged


def test_a_namespace_that_cannot_be_read_leaves_its_routes_statuses_alone() -> None:
    stores: dict[str, FakeKube] = {"team-a": Refusing(reads=False)}
    result = _pass(stores)
    assert result.unchanged == {A_CHAT, SHARED} and B_CHAT not in result.withheld
    assert _models(stores["team-b"]) == ["b-model"] and result.failed


def test_a_namespace_whose_document_is_too_large_says_so_without_retrying(monkeypatch: pytest.MonkeyPatch) -> None:
    planned = sidecar_pass.plan

    def plan(rendered: Any, settings: OperatorSettings) -> Any:
        if settings.gateway_namespace == "team-a":
            raise TooLarge("it does not fit in 1 shard of at most 1,000,000 bytes", 2_000_000, {})
        return planned(rendered, settings)

    monkeypatch.setattr(sidecar_pass, "plan", plan)
    stores: dict[str, FakeKube] = {}
    result = _pass(stores)
    assert not result.failed and not result.unchanged
    too_large = _ready(ROUTES[0], result)
    assert (too_large["status"], too_large["reason"]) == ("False", "ConfigTooLarge")
    assert "namespace team-a" in too_large["message"] and "1 shard" in too_large["message"]
    assert _models(stores["team-b"]) == ["b-model"] and _ready(ROUTES[1], result)["status"] == "True"
