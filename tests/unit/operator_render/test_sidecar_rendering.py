"""Per-namespace sidecar documents: a namespace sees its own attached routes and what the platform
shares with it, never another namespace's routes or key values; the document loads in the gateway."""

from __future__ import annotations

import json
import random
from typing import Any

from kube_routes import deployment, mock_deployment, route
from modelgate_gateway.config import parse_config, validate_data
from modelgate_gateway.runtime import compile_runtime
from modelgate_operator.rendering.render import Rendered
from modelgate_operator.rendering.resources import ModelRoute, parse_route
from modelgate_operator.rendering.sidecars import (
    API_KEY_PREFIX,
    SIGNING_KEY,
    NamespaceKeys,
    Scope,
    render_namespace,
    routes_for,
    sidecar_namespaces,
)

SCOPE = Scope(gateway="modelgate", sharing=frozenset({"platform"}))
KEYS = NamespaceKeys(signing_key=b"k" * 32)
SECRETS: dict[tuple[str, str], dict[str, bytes] | None] = {
    ("team-a", "openai"): {"api-key": b"sk-team-a"},
    ("team-b", "openai"): {"api-key": b"sk-team-b"},
    ("platform", "openai"): {"api-key": b"sk-platform"},
}


def _routes(*bodies: dict[str, Any]) -> list[ModelRoute]:
    return [parse_route(b, "modelgate") for b in bodies]


def _render(namespace: str, routes: list[ModelRoute], keys: NamespaceKeys = KEYS) -> Rendered:
    return render_namespace(namespace, routes, SECRETS, None, SCOPE, keys, generation=1)


def _models(rendered: Rendered) -> list[str]:
    return [m["name"] for m in json.loads(rendered.document)["spec"]["models"]]


ROUTES = _routes(
    route("a-chat", "gpt-4o", namespace="team-a", sidecars={"attach": True}),
    route("a-gateway-only", "a-private", namespace="team-a"),
    route("b-chat", "gpt-4o-b", namespace="team-b", sidecars={"attach": True, "sharedGateway": False}),
    route(
        "b-pushes",
        "pushed",
        namespace="team-b",
        sidecars={"shareWith": ["team-a"]},
        deployments=[deployment(secret="openai")],
    ),
    route("shared", "gpt-4o-mini", namespace="platform", sidecars={"shareWith": ["team-a", "team-b"]}),
)


def test_a_namespace_gets_its_attached_routes_and_what_the_platform_shares_only() -> None:
    a, b = _render("team-a", ROUTES), _render("team-b", ROUTES)
    assert _models(a) == ["gpt-4o", "gpt-4o-mini"]
    assert _models(b) == ["gpt-4o-b", "gpt-4o-mini"]
    assert set(a.verdicts) == {("team-a", "a-chat"), ("platform", "shared")}


def test_no_key_value_crosses_into_a_namespace_whose_routes_do_not_reference_it() -> None:
    a, b = _render("team-a", ROUTES), _render("team-b", ROUTES)
    assert {k: v for k, v in a.secret_data.items() if k != SIGNING_KEY} == {
        "team-a.a-chat.main": b"sk-team-a",
        "platform.shared.main": b"sk-platform",
    }
    assert {k: v for k, v in b.secret_data.items() if k != SIGNING_KEY} == {
        "team-b.b-chat.main": b"sk-team-b",
        "platform.shared.main": b"sk-platform",
    }
    for doc in (a.document, b.document):
        assert b"sk-" not in doc
    assert b"team-b" not in a.document and b"team-a" not in b.document
    assert b"sk-team-b" not in b"".join(a.secret_data.values())


def test_a_namespace_without_sharing_rights_cannot_push_routes_into_another() -> None:
    assert "pushed" not in _models(_render("team-a", ROUTES))
    assert sidecar_namespaces(ROUTES, [], SCOPE.sharing) == {"team-a", "team-b"}


def test_a_team_route_shadows_a_shared_route_of_the_same_model_even_an_older_one() -> None:
    routes = _routes(
        route(
            "shared", "gpt-4o", namespace="platform", created="2025-01-01T00:00:00Z", sidecars={"shareWith": ["team-a"]}
        ),
        route("mine", "gpt-4o", namespace="team-a", created="2026-06-01T00:00:00Z", sidecars={"attach": True}),
    )
    assert [r.name for r in routes_for("team-a", routes, SCOPE.sharing)] == ["mine"]
    rendered = _render("team-a", routes)
    assert rendered.secret_data["team-a.mine.main"] == b"sk-team-a"
    assert "platform.shared.main" not in rendered.secret_data


def test_pod_local_trust_by_default_and_the_namespace_signing_key() -> None:
    rendered = _render("team-a", ROUTES)
    spec = json.loads(rendered.document)["spec"]
    assert spec["auth"]["allowUnauthenticated"] is True and not spec["auth"].get("keys")
    assert spec["responseIds"]["signingKey"] == {"secretKey": SIGNING_KEY}
    assert rendered.secret_data[SIGNING_KEY] == KEYS.signing_key
    runtime = compile_runtime(parse_config(rendered.document, "json"), rendered.secret_data, ".")
    assert sorted(runtime.models) == ["gpt-4o", "gpt-4o-mini"]


def test_sidecar_api_keys_come_from_the_namespace_and_bad_names_are_left_out() -> None:
    keys = NamespaceKeys(signing_key=b"s" * 32, api_keys={"app": b"sk-app-key", "bad name": b"x", "empty": b""})
    rendered = _render("team-a", ROUTES, keys)
    auth = json.loads(rendered.document)["spec"]["auth"]
    assert auth["keys"] == [{"name": "app", "valueFrom": {"secretKey": API_KEY_PREFIX + "app"}, "models": ["*"]}]
    assert auth.get("allowUnauthenticated", False) is False
    assert rendered.secret_data[API_KEY_PREFIX + "app"] == b"sk-app-key"
    closed = _render("team-a", ROUTES, NamespaceKeys(signing_key=b"s" * 32, api_keys={}))
    assert json.loads(closed.document)["spec"]["auth"]["keys"] == []  # fail closed: no key works


def test_the_base_gives_limits_and_observability_but_not_its_models_or_keys() -> None:
    base = validate_data(
        {
            "apiVersion": "config.modelgate.dev/v1alpha1",
            "kind": "GatewayConfig",
            "spec": {
                "deployments": [{"name": "platform-mock", "provider": "mock", "model": "m"}],
                "models": [{"name": "base-model", "targets": [{"deployment": "platform-mock"}]}],
                "auth": {"keys": [{"name": "admin", "valueFrom": {"file": "/etc/modelgate/api-keys/admin"}}]},
                "limits": {"maxRequestBodyBytes": 4096},
                "observability": {"endUserLabelLimit": 7},
            },
        }
    )
    rendered = render_namespace("team-a", ROUTES, SECRETS, base, SCOPE, KEYS, generation=3)
    spec = json.loads(rendered.document)["spec"]
    assert spec["limits"]["maxRequestBodyBytes"] == 4096
    assert spec["observability"]["endUserLabelLimit"] == 7
    assert "base-model" not in _models(rendered) and b"/etc/modelgate/api-keys" not in rendered.document


def test_namespaces_that_need_a_document() -> None:
    assert sidecar_namespaces(ROUTES, ["team-c"], SCOPE.sharing) == {"team-a", "team-b", "team-c"}


def test_randomised_routes_never_leak_a_key_value_across_namespaces() -> None:
    rng = random.Random(15)
    namespaces = ["platform", "ns-1", "ns-2", "ns-3", "ns-4"]
    bodies, secrets, owner = [], {}, {}
    for index in range(60):
        namespace = rng.choice(namespaces)
        value = f"value-{index}".encode()
        secrets[(namespace, f"key-{index}")] = {"api-key": value}
        owner[value] = (namespace, f"r-{index}")
        sidecars: dict[str, Any] = {
            "attach": rng.random() < 0.5,
            "shareWith": rng.sample(namespaces, rng.randint(0, 3)),
        }
        deployments = [deployment(secret=f"key-{index}"), mock_deployment()] if rng.random() < 0.8 else None
        bodies.append(
            route(
                f"r-{index}",
                f"model-{rng.randint(0, 20)}",
                namespace=namespace,
                sidecars=sidecars,
                created=f"2026-01-{rng.randint(1, 28):02d}T00:00:00Z",
                deployments=deployments,
            )
        )
    routes = _routes(*bodies)
    checked = 0
    for namespace in sidecar_namespaces(routes, [], SCOPE.sharing):
        rendered = render_namespace(namespace, routes, secrets, None, SCOPE, KEYS, generation=1)
        allowed = {r.key for r in routes_for(namespace, routes, SCOPE.sharing)}
        for key, value in rendered.secret_data.items():
            if key != SIGNING_KEY:
                assert owner[value] in allowed, (namespace, key)
                assert owner[value][0] == namespace or owner[value][0] == "platform", (namespace, key)
                checked += 1
        assert set(rendered.verdicts) <= allowed
    assert checked > 20
