"""ModelRoute status in sidecar mode: sidecars counted next to gateway pods, Ready waits for both."""

from __future__ import annotations

from kube_routes import route
from modelgate_operator.reconciling.conditions import Rollout, build_status
from modelgate_operator.rendering.render import Verdict
from modelgate_operator.rendering.resources import parse_route

NOW = "2026-01-01T00:00:00Z"


def _ready(status: dict) -> dict:
    return next(c for c in status["conditions"] if c["type"] == "Ready")


def test_ready_waits_for_the_sidecars_too() -> None:
    chat = parse_route(route("chat", "gpt-4o", sidecars={"attach": True}), "modelgate")
    status, _ = build_status(chat, Verdict(), Rollout(2, 2), None, NOW, sidecars=Rollout(1, 3), sidecar_mode=True)
    assert (status["rollout"], status["sidecars"]) == ("2/2", "1/3")
    ready = _ready(status)
    assert (ready["status"], ready["reason"]) == ("False", "RollingOut")
    assert ready["message"] == "Served by 2/2 gateway pods and 1/3 sidecars; waiting for the rest."
    done, _ = build_status(chat, Verdict(), Rollout(2, 2), None, NOW, sidecars=Rollout(3, 3), sidecar_mode=True)
    assert (_ready(done)["status"], _ready(done)["message"]) == ("True", "Served by 2/2 gateway pods and 3/3 sidecars.")


def test_a_sidecar_only_route_has_no_gateway_rollout() -> None:
    private = parse_route(route("private", "p", sidecars={"attach": True, "sharedGateway": False}), "modelgate")
    status, _ = build_status(private, Verdict(), Rollout(0, 0), None, NOW, sidecars=Rollout(2, 2), sidecar_mode=True)
    assert (status["rollout"], status["sidecars"]) == ("-", "2/2")
    assert _ready(status)["message"] == "Served by 2/2 sidecars."


def test_status_sidecars_exists_only_in_sidecar_mode() -> None:
    chat = parse_route(route("chat", "gpt-4o"), "modelgate")
    plain, _ = build_status(chat, Verdict(), Rollout(1, 1), None, NOW)
    assert "sidecars" not in plain
    mode, _ = build_status(chat, Verdict(), Rollout(1, 1), None, NOW, sidecar_mode=True)
    assert mode["sidecars"] == "-"  # no sidecar serves it
    assert _ready(mode)["message"] == _ready(plain)["message"] == "Served by 1/1 gateway pods."
