"""Pure rendering: routes + Secrets + base document -> a document the gateway accepts."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from kube_routes import deployment, mock_deployment, route
from modelgate_gateway.config import parse_config, validate_data
from modelgate_operator.errors import BaseConfigError
from modelgate_operator.rendering.render import Rendered, render, secret_store_key
from modelgate_operator.rendering.resources import ModelRoute, parse_route

SECRETS: dict[tuple[str, str], dict[str, bytes] | None] = {
    ("default", "openai"): {"api-key": b"sk-default"},
    ("team-b", "openai"): {"api-key": b"sk-team-b"},
}


def _render(*bodies: dict[str, Any], secrets: Any = None, base: Any = None,
            generation: int = 1) -> Rendered:
    routes = [parse_route(b, "modelgate") for b in bodies]
    return render(routes, SECRETS if secrets is None else secrets, base,
                  gateway="modelgate", generation=generation)


def _doc(rendered: Rendered) -> dict[str, Any]:
    return json.loads(rendered.document)


def test_one_route_renders_a_document_the_gateway_loads() -> None:
    rendered = _render(route("gpt", "gpt-4o", pricing={"inputUsdPerMillionTokens": 2.5}))
    config = parse_config(rendered.document, "json")
    assert [m.name for m in config.spec.models] == ["gpt-4o"]
    model = config.spec.models[0]
    assert model.route is not None and (model.route.namespace, model.route.name) == ("default", "gpt")
    assert model.pricing.input_usd_per_million_tokens == 2.5
    assert [d.name for d in config.spec.deployments] == ["default/gpt/main"]
    dep = config.spec.deployments[0]
    assert dep.model == "gpt-4o"
    assert dep.credentials is not None and dep.credentials.secret_key == "default.gpt.main"
    assert rendered.secret_data == {"default.gpt.main": b"sk-default"}
    assert b"sk-default" not in rendered.document
    assert _doc(rendered)["metadata"]["checksum"] == rendered.checksum
    assert _doc(rendered)["metadata"]["generation"] == 1


def test_fields_map_one_to_one() -> None:
    dep = deployment(api="chat_completions", provider="vllm", weight=3,
                     timeouts={"connectSeconds": 2, "firstByteSeconds": 30},
                     maxConcurrentRequests=7, queryParams={"api-version": "2025-01-01"},
                     pricing={"outputUsdPerMillionTokens": 1}, organization="org-eu",
                     translation={"unsupportedTools": "drop"})
    body = route("r", "m", deployments=[dep], strategy="least-outstanding", fallbacks=["other"],
                 retry={"maxAttempts": 5}, cooldown={"durationSeconds": 9})
    other = route("o", "other", deployments=[mock_deployment()])
    config = parse_config(_render(body, other).document, "json")
    model = next(m for m in config.spec.models if m.name == "m")
    assert model.strategy.value == "least-outstanding"
    assert model.fallbacks == ["other"] and model.retry.max_attempts == 5
    assert model.cooldown.duration_seconds == 9
    assert [(t.deployment, t.weight) for t in model.targets] == [("default/r/main", 3.0)]
    rendered_dep = next(d for d in config.spec.deployments if d.name == "default/r/main")
    assert rendered_dep.api.value == "chat_completions" and rendered_dep.provider.value == "vllm"
    assert rendered_dep.timeouts.connect_seconds == 2
    assert rendered_dep.max_concurrent_requests == 7
    assert rendered_dep.query_params == {"api-version": "2025-01-01"}
    assert rendered_dep.pricing is not None and rendered_dep.pricing.output_usd_per_million_tokens == 1
    assert rendered_dep.organization == "org-eu" and rendered_dep.translation.unsupported_tools == "drop"


def test_many_routes_in_many_namespaces() -> None:
    bodies = [route(f"r{i}", f"model-{i}", namespace="default" if i % 2 else "team-b")
              for i in range(40)]
    rendered = _render(*bodies)
    config = parse_config(rendered.document, "json")
    assert len(config.spec.models) == 40 and len(config.spec.deployments) == 40
    assert all(v.included for v in rendered.verdicts.values())
    assert rendered.secret_data["team-b.r0.main"] == b"sk-team-b"
    assert rendered.secret_data["default.r1.main"] == b"sk-default"


def test_output_is_byte_stable_whatever_the_input_order() -> None:
    bodies = [route(f"r{i}", f"model-{i}") for i in range(20)]
    first = _render(*bodies)
    shuffled = bodies[:]
    random.Random(7).shuffle(shuffled)
    second = _render(*shuffled)
    assert first.document == second.document and first.checksum == second.checksum
    assert _render(*bodies, generation=2).checksum == first.checksum  # generation is not spec


def test_name_conflict_older_route_wins() -> None:
    older = route("old", "gpt-4o", namespace="team-b", created="2026-01-01T00:00:00Z")
    newer = route("new", "gpt-4o", namespace="default", created="2026-02-01T00:00:00Z")
    rendered = _render(newer, older)
    assert rendered.verdicts[("team-b", "old")].included
    verdict = rendered.verdicts[("default", "new")]
    assert not verdict.accepted and verdict.accepted_reason == "ModelNameConflict"
    assert "team-b/old" in verdict.accepted_message
    models = parse_config(rendered.document, "json").spec.models
    assert [m.route.namespace for m in models if m.route] == ["team-b"]


def test_name_conflict_same_age_breaks_tie_by_namespace_and_name() -> None:
    rendered = _render(route("b", "x"), route("a", "x"))
    assert rendered.verdicts[("default", "a")].included
    assert rendered.verdicts[("default", "b")].accepted_reason == "ModelNameConflict"


@pytest.mark.parametrize(("secrets", "reason"), [
    ({}, "SecretNotFound"),
    ({("default", "openai"): None}, "SecretNotFound"),
    ({("default", "openai"): {"other": b"x"}}, "SecretKeyNotFound"),
])
def test_missing_refs_leave_the_route_out_and_keep_the_others(secrets: Any, reason: str) -> None:
    broken = route("broken", "gpt-4o")
    healthy = route("healthy", "mock", deployments=[mock_deployment()])
    rendered = _render(broken, healthy, secrets=secrets)
    verdict = rendered.verdicts[("default", "broken")]
    assert verdict.accepted and not verdict.resolved and verdict.resolved_reason == reason
    assert "default/openai" in verdict.resolved_message
    assert [m.name for m in parse_config(rendered.document, "json").spec.models] == ["mock"]
    assert rendered.secret_data == {}


def test_secrets_are_read_only_in_the_route_namespace() -> None:
    # team-c has no Secret "openai"; the one in default must not be used.
    rendered = _render(route("r", "m", namespace="team-c"))
    assert rendered.verdicts[("team-c", "r")].resolved_reason == "SecretNotFound"


def _fallbacks(rendered: Rendered) -> dict[str, list[str]]:
    return {m.name: list(m.fallbacks) for m in parse_config(rendered.document, "json").spec.models}


def test_a_missing_fallback_degrades_the_route_instead_of_removing_it() -> None:
    a = route("a", "a", deployments=[mock_deployment()], fallbacks=["b", "gone", "c"])
    b = route("b", "b", deployments=[mock_deployment()], fallbacks=["nowhere"])
    c = route("c", "c", deployments=[mock_deployment()])
    rendered = _render(a, b, c)
    # Every route is served; each without the fallbacks nobody serves, in the declared order.
    assert _fallbacks(rendered) == {"a": ["b", "c"], "b": [], "c": []}
    verdicts = rendered.verdicts
    assert verdicts[("default", "a")].included and verdicts[("default", "a")].missing_fallbacks == ("gone",)
    assert verdicts[("default", "b")].degraded and verdicts[("default", "b")].missing_fallbacks == ("nowhere",)
    assert not verdicts[("default", "c")].degraded


def test_deleting_a_fallback_model_keeps_its_users_served() -> None:
    """Issue 19: deleting route gpt-4o-mini took route assistant (its fallback user) down."""
    assistant = route("assistant", "assistant", deployments=[mock_deployment()],
                      fallbacks=["gpt-4o-mini"])
    mini = route("gpt-4o-mini", "gpt-4o-mini", deployments=[mock_deployment()])
    assert _fallbacks(_render(assistant, mini)) == {"assistant": ["gpt-4o-mini"], "gpt-4o-mini": []}
    after = _render(assistant)
    assert _fallbacks(after) == {"assistant": []}
    verdict = after.verdicts[("default", "assistant")]
    assert verdict.included and verdict.missing_fallbacks == ("gpt-4o-mini",)


def test_fallback_cycle_leaves_the_newest_route_out_and_degrades_the_other() -> None:
    a = route("a", "a", deployments=[mock_deployment()], fallbacks=["b"], created="2026-01-01T00:00:00Z")
    b = route("b", "b", deployments=[mock_deployment()], fallbacks=["a"], created="2026-03-01T00:00:00Z")
    rendered = _render(a, b)
    assert rendered.verdicts[("default", "b")].resolved_reason == "FallbackCycle"
    assert "fallback cycle: " in rendered.verdicts[("default", "b")].resolved_message
    # a's fallback b is left out, so a is served without it.
    assert rendered.verdicts[("default", "a")].missing_fallbacks == ("b",)
    assert _fallbacks(rendered) == {"a": []}
    validate_data(json.loads(rendered.document))


def test_blame_follows_structured_issues_not_message_text() -> None:
    """A model name holding the cycle message's separator must not get a bystander blamed."""
    a = route("a", "p -> q", deployments=[mock_deployment()], fallbacks=["r"], created="2026-01-01T00:00:00Z")
    b = route("b", "r", deployments=[mock_deployment()], fallbacks=["p -> q"], created="2026-02-01T00:00:00Z")
    bystander = route("c", "p", deployments=[mock_deployment()], created="2026-03-01T00:00:00Z")
    rendered = _render(a, b, bystander)
    assert rendered.verdicts[("default", "b")].resolved_reason == "FallbackCycle"
    assert rendered.verdicts[("default", "c")].included
    assert rendered.verdicts[("default", "a")].missing_fallbacks == ("r",)
    assert sorted(_fallbacks(rendered)) == ["p", "p -> q"]


def test_invalid_spec_is_reported_with_its_field() -> None:
    bad = route("bad", "m", deployments=[deployment(weight=0)])
    dup = route("dup", "n", deployments=[deployment("x"), deployment("x")])
    mock_extra = route("mx", "o", deployments=[deployment(mock={"text": "hi"})])
    rendered = _render(bad, dup, mock_extra, route("ok", "ok"))
    assert rendered.verdicts[("default", "bad")].accepted_reason == "InvalidSpec"
    assert "weight above 0" in rendered.verdicts[("default", "bad")].accepted_message
    assert "duplicate deployment names ['x']" in rendered.verdicts[("default", "dup")].accepted_message
    assert "mock: only allowed with provider mock" in rendered.verdicts[("default", "mx")].accepted_message
    assert [m.name for m in parse_config(rendered.document, "json").spec.models] == ["ok"]


def test_routes_of_other_gateways_are_ignored() -> None:
    rendered = _render(route("r", "m", gatewayRef={"name": "other"}), route("s", "n"))
    assert set(rendered.verdicts) == {("default", "s")}


def test_base_document_is_kept_and_its_models_are_reserved() -> None:
    base = validate_data({
        "apiVersion": "config.modelgate.dev/v1alpha1", "kind": "GatewayConfig",
        "spec": {"deployments": [{"name": "base-mock", "provider": "mock", "model": "m"}],
                 "models": [{"name": "house", "targets": [{"deployment": "base-mock"}]}],
                 "auth": {"allowUnauthenticated": True}},
    })
    rendered = _render(route("r", "house"), route("s", "mine", fallbacks=["house"]), base=base)
    assert rendered.verdicts[("default", "r")].accepted_reason == "ModelNameConflict"
    config = parse_config(rendered.document, "json")
    assert [m.name for m in config.spec.models] == ["house", "mine"]
    assert config.spec.auth.allow_unauthenticated is True


def test_base_errors_are_not_blamed_on_routes() -> None:
    base = validate_data({
        "apiVersion": "config.modelgate.dev/v1alpha1", "kind": "GatewayConfig",
        "spec": {"deployments": [{"name": "base-mock", "provider": "mock", "model": "m"}],
                 "models": [{"name": "house", "targets": [{"deployment": "base-mock"}]}],
                 "auth": {"keys": [{"name": "k", "sha256": "0" * 64, "models": ["house"]}]}},
    })
    from modelgate_gateway.config import EnvRef

    key = base.spec.auth.keys[0].model_copy(update={"value_from": EnvRef(env="ALSO_A_KEY")})
    auth = base.spec.auth.model_copy(update={"keys": [key]})
    broken = base.model_copy(update={"spec": base.spec.model_copy(update={"auth": auth})})
    with pytest.raises(BaseConfigError, match="set exactly one of sha256 and valueFrom"):
        _render(route("r", "x"), base=broken)


def test_long_names_get_a_hashed_secret_key() -> None:
    long_route = ModelRoute(namespace="ns", name="r" * 250, generation=1, uid="u",
                            creation_timestamp="", gateway="modelgate", model="m")
    key = secret_store_key(long_route, "main")
    assert len(key) <= 253 and key.startswith("ns.")
    assert key == secret_store_key(long_route, "main") != secret_store_key(long_route, "other")
