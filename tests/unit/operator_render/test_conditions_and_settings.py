"""Conditions (transition times, changes, Ready reasons), route parsing and operator settings."""

from __future__ import annotations

from typing import Any

import pytest

from kube_routes import deployment, route
from modelgate_operator.main import kopf_namespaces
from modelgate_operator.reconciling.conditions import Rollout, build_status, status_differs
from modelgate_operator.reconciling.rollout import RolloutHistory
from modelgate_operator.rendering.render import Verdict
from modelgate_operator.rendering.resources import parse_route
from modelgate_operator.settings import OperatorSettings, SettingsError

ROUTE = parse_route(route("r", "m", generation=3), "modelgate")


def _by_type(status: dict[str, Any]) -> dict[str, Any]:
    return {c["type"]: c for c in status["conditions"]}


@pytest.mark.parametrize(("verdict", "rollout", "ready"), [
    (Verdict(), Rollout(0, 0), ("True", "Published")),
    (Verdict(), Rollout(3, 3), ("True", "Serving")),
    (Verdict(), Rollout(1, 3), ("False", "RollingOut")),
    (Verdict(accepted=False, accepted_reason="ModelNameConflict"), Rollout(0, 3),
     ("False", "ModelNameConflict")),
    (Verdict(resolved=False, resolved_reason="SecretNotFound"), Rollout(0, 3),
     ("False", "SecretNotFound")),
])
def test_ready_reason(verdict: Verdict, rollout: Rollout, ready: tuple[str, str]) -> None:
    status, _ = build_status(ROUTE, verdict, rollout, None, "t0")
    cond = _by_type(status)["Ready"]
    assert (cond["status"], cond["reason"]) == ready
    assert cond["observedGeneration"] == 3 and status["observedGeneration"] == 3


def test_rejected_route_has_unknown_resolved_refs_and_no_rollout() -> None:
    status, _ = build_status(ROUTE, Verdict(accepted=False, accepted_reason="InvalidSpec"),
                             Rollout(0, 2), None, "t0")
    assert _by_type(status)["ResolvedRefs"]["status"] == "Unknown"
    assert status["rollout"] == "-"


def test_transition_time_moves_only_when_status_changes() -> None:
    first, changes = build_status(ROUTE, Verdict(), Rollout(1, 2), None, "t0")
    assert {c.type for c in changes} == {"Accepted", "ResolvedRefs", "Ready"}
    same, changes = build_status(ROUTE, Verdict(), Rollout(1, 2), first, "t1")
    assert changes == [] and not status_differs(same, first)
    done, changes = build_status(ROUTE, Verdict(), Rollout(2, 2), same, "t2")
    assert [(c.type, c.reason, c.event_type) for c in changes] == [("Ready", "Serving", "Normal")]
    assert _by_type(done)["Ready"]["lastTransitionTime"] == "t2"
    assert _by_type(done)["Accepted"]["lastTransitionTime"] == "t0"
    assert status_differs(done, same)


def test_a_degraded_route_is_ready_and_says_which_fallback_is_missing() -> None:
    degraded = Verdict(missing_fallbacks=("gpt-4o-mini",))
    healthy, _ = build_status(ROUTE, Verdict(), Rollout(2, 2), None, "t0")
    status, changes = build_status(ROUTE, degraded, Rollout(2, 2), healthy, "t1")
    ready, refs = _by_type(status)["Ready"], _by_type(status)["ResolvedRefs"]
    assert (ready["status"], ready["reason"]) == ("True", "Degraded")
    assert "2/2" in ready["message"] and "'gpt-4o-mini'" in ready["message"]
    assert (refs["status"], refs["reason"]) == ("False", "FallbackUnavailable")
    assert "served without it" in refs["message"]
    assert ready["lastTransitionTime"] == "t0"  # still True: no transition
    assert status["rollout"] == "2/2" and status["deployments"] == []
    # Both changes become Warning Events, though Ready stays True.
    assert sorted((c.type, c.reason, c.event_type) for c in changes) == [
        ("Ready", "Degraded", "Warning"), ("ResolvedRefs", "FallbackUnavailable", "Warning")]
    _, changes = build_status(ROUTE, Verdict(), Rollout(2, 2), status, "t2")
    assert sorted((c.type, c.reason, c.event_type) for c in changes) == [
        ("Ready", "Serving", "Normal"), ("ResolvedRefs", "ResolvedRefs", "Normal")]
    rolling, _ = build_status(ROUTE, degraded, Rollout(1, 2), None, "t0")
    assert _by_type(rolling)["Ready"]["reason"] == "RollingOut"
    unpodded, _ = build_status(ROUTE, degraded, Rollout(0, 0), None, "t0")
    assert _by_type(unpodded)["Ready"]["reason"] == "Degraded"
    assert "no gateway pods" in _by_type(unpodded)["Ready"]["message"]


def test_rollout_history_counts_only_documents_containing_the_generation() -> None:
    history = RolloutHistory()
    key = ("default", "r")
    history.record("sha256:a", frozenset({(key, 1)}))
    history.record("sha256:b", frozenset({(key, 2)}))
    counts = history.count(["sha256:a", "sha256:b", None, "sha256:unknown"], [(key, 2)])
    assert counts[key] == Rollout(1, 4)


def test_parse_route_defaults_and_errors() -> None:
    parsed = parse_route(route("r", "m", gatewayRef={"name": "other"}), "modelgate")
    assert parsed.gateway == "other" and parsed.deployments[0].weight == 1.0
    broken = parse_route(route("r", "m", deployments=[deployment(baseUrl=None)]), "modelgate")
    assert broken.error is not None and "baseUrl: required" in broken.error.message
    no_spec = parse_route({"metadata": {"name": "x", "namespace": "n"}}, "modelgate")
    assert no_spec.error is not None and no_spec.error.reason == "InvalidSpec"


def test_settings_from_env_follow_the_contract() -> None:
    s = OperatorSettings.from_env({"POD_NAMESPACE": "mg", "MODELGATE_OPERATOR_GATEWAY_NAME": "edge",
                                   "MODELGATE_OPERATOR_NAMESPACES": "b, a,,a",
                                   "MODELGATE_OPERATOR_PEERING_PRIORITY": "7"})
    assert (s.gateway_namespace, s.configmap, s.secret, s.gateway_deployment) == (
        "mg", "edge-gateway-config", "edge-gateway-upstream-keys", "edge-gateway")
    assert s.namespaces == ("a", "b") and s.priority == 7 and s.peering == "modelgate"
    assert dict(s.pod_selector) == {"app.kubernetes.io/component": "gateway"}
    assert kopf_namespaces(s) == ["a", "b"]
    default = OperatorSettings.from_env({})
    assert default.clusterwide and kopf_namespaces(default) == []
    assert default.priority > 0  # random, so two replicas never tie


@pytest.mark.parametrize("env", [
    {"MODELGATE_OPERATOR_GATEWAY_POD_SELECTOR": "novalue"},
    {"MODELGATE_OPERATOR_PEERING_PRIORITY": "high"},
    {"MODELGATE_OPERATOR_DEBOUNCE_SECONDS": "-1"},
])
def test_bad_settings_are_rejected(env: dict[str, str]) -> None:
    with pytest.raises(SettingsError):
        OperatorSettings.from_env(env)
